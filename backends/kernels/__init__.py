"""One :class:`lrp_core.kernels.Backend` subclass per array framework, each in its own module
(imported by the registry in :mod:`lrp_core.kernels` the first time an array of its framework is
seen). The table of which operation is native where is in :mod:`lrp_core.kernels`."""
