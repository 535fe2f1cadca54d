"""The harness's Markdown table and plot, from its JSON record."""

from __future__ import annotations

__all__ = ["markdown", "write_markdown", "write_plot"]


def _baseline(cases, model, batch, name):
    for case in cases:
        if (case["model"], case["batch"], case["contender"]) == (model, batch, name) \
                and "median" in case:
            return case["median"]
    return None


def markdown(record) -> str:
    """One table: median seconds, per image, ratio to the gradient (and to the forward pass),
    spread, peak extra memory when measured; the skipped contenders with their reasons."""
    cases = record["cases"]
    versions = ", ".join(f"{k} {v}" for k, v in record["versions"].items() if v)
    machine = record["machine"]
    lines = [f"Measured {record['date']} on {machine['platform']} ({machine['cpu_count']} CPUs, "
             f"{machine['torch_threads']} torch threads, device {machine.get('device', 'cpu')}), "
             f"{record['settings']['dtype']}, "
             f"{record['settings']['rounds']} interleaved rounds, median; {versions}.", ""]
    memory = record["settings"].get("memory")
    header = "| model | batch | preset | contender | median s | s / image | x gradient | " \
             "x forward | spread |" + (" peak extra MiB | growth MiB |" if memory else "")
    lines += [header, "|" + "---|" * (header.count("|") - 1)]
    for case in cases:
        if "median" not in case:
            continue
        gradient = _baseline(cases, case["model"], case["batch"], "gradient")
        forward = _baseline(cases, case["model"], case["batch"], "forward")
        row = [case["model"], str(case["batch"]), case["preset"] if case["contender"] not in
               ("forward", "gradient") else "-", case["contender"], f"{case['median']:.4f}",
               f"{case['median'] / case['batch']:.4f}",
               f"{case['median'] / gradient:.2f}" if gradient else "",
               f"{case['median'] / forward:.2f}" if forward else "",
               f"{case['spread']:.0%}"]
        if memory:
            m = case.get("memory", {})
            row += [f"{m['extra_peak_mib']:.0f}" if "extra_peak_mib" in m else
                    m.get("error", m.get("unsupported", "")),
                    f"{m['growth_mib']:.1f}" if m.get("growth_mib") is not None else ""]
        lines.append("| " + " | ".join(row) + " |")
    skipped = sorted({(c["contender"], c["skipped"]) for c in cases if "skipped" in c})
    if skipped:
        lines += ["", "Not run:"]
        lines += [f"- {name}: {reason}" for name, reason in skipped]
    return "\n".join(lines) + "\n"


def write_markdown(record, path) -> str:
    text = markdown(record)
    with open(path, "w") as f:
        f.write(text)
    return text


def write_plot(record, path) -> bool:
    """Time per image against batch size, one line per contender, one panel per model and
    preset; ``False`` when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    cases = [c for c in record["cases"] if "median" in c]
    panels = sorted({(c["model"], c["preset"]) for c in cases
                     if c["contender"] not in ("forward", "gradient")})
    if not panels:
        return False
    columns = min(3, len(panels))
    rows = -(-len(panels) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.4 * rows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    # one colour per contender in every panel (matplotlib's cycle would depend on which ran)
    names = sorted({c["contender"] for c in cases})
    colours = {name: f"C{i % 10}" for i, name in enumerate(names)}
    for ax, (model, preset) in zip(axes.flat, panels):
        lines = {}
        for c in cases:
            if c["model"] == model and (c["preset"] == preset or
                                        c["contender"] in ("forward", "gradient")):
                lines.setdefault(c["contender"], []).append((c["batch"], c["median"] / c["batch"]))
        for name, points in sorted(lines.items()):
            points.sort()
            ax.plot([b for b, _ in points], [t for _, t in points], marker="o", label=name,
                    color=colours[name])
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(f"{model}, {preset}", fontsize=9)
        ax.set_xlabel("batch size")
        ax.set_ylabel("seconds per image")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True
