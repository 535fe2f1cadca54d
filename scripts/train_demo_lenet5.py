"""Train the LeNet-5 that ``lrp demo`` explains, reproducibly, and write its weights and sample
digits.

    pip install torch scikit-learn          # needed here only; the demo itself runs on NumPy
    python scripts/train_demo_lenet5.py     # writes lrp_core/data/lenet5_digits.npz and digits.npz

Data: scikit-learn's ``load_digits`` (the UCI optical-recognition handwritten digits, 1,797 images
of 8x8 with grey levels 0..16, CC BY 4.0), scaled to [0, 1] and upsampled to 28x28 (bicubic,
clipped to [0, 1]): white digits on black, as MNIST. A stratified quarter of it (450 images,
``random_state=0``) is held out and never trained on; the held-out accuracy is printed and stored.

Model: conv 5x5 (1->6) -> relu -> max pool 2 -> conv 5x5 (6->16) -> relu -> max pool 2 -> flatten
-> dense 256->120 -> relu -> dense 120->84 -> relu -> dense 84->10 (logits), i.e. the layout of
``lrp_core.models.random_lenet5`` and the seed document's 8-layer LeNet-5.

Training: Adam, batches of 32, random shifts of up to 2 pixels, on the CPU with fixed seeds and
deterministic algorithms, so that a rerun writes the same weights (up to the torch version).

Outputs (safe formats, loaded with ``allow_pickle=False``):
- ``lrp_core/data/lenet5_digits.npz``: the weights as float32 arrays with torch's names and
  layouts (``conv1.weight`` (6, 1, 5, 5), ..., ``fc3.bias`` (10,)) and the training record
  (``heldout_accuracy``, ``n_train``, ``n_heldout``, ``seed``, ``epochs``, ``torch_version``).
- ``lrp_core/data/digits.npz``: ``images`` (10, 1, 28, 28) float32, the first held-out image of
  each class 0..9, and their ``labels``.

Recorded run (torch 2.14.1, scikit-learn 1.9.1, CPU, seed 0, 60 epochs, about a minute):
held-out accuracy 0.9911 (446/450); two runs wrote bit-identical weights. The NumPy model built
from the file matches torch's logits to 1e-5 (float32).
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

ROOT = pathlib.Path(__file__).resolve().parents[1]
DATA = ROOT / "lrp_core" / "data"


def upsample(images_8x8: np.ndarray) -> np.ndarray:
    """(N, 8, 8) grey levels 0..16 -> (N, 1, 28, 28) float32 in [0, 1] (bicubic)."""
    x = torch.tensor(images_8x8[:, None] / 16.0, dtype=torch.float32)
    return F.interpolate(x, size=(28, 28), mode="bicubic", align_corners=False).clamp(0, 1).numpy()


class LeNet5(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(256, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


def random_shift(x: torch.Tensor, generator: torch.Generator, max_shift: int = 2) -> torch.Tensor:
    """Shift each image by up to ``max_shift`` pixels in each direction (zero fill)."""
    n, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4)
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    return torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--out", type=pathlib.Path, default=DATA)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)  # reductions in a fixed order: the same weights on every rerun

    digits = load_digits()
    images, labels = upsample(digits.images), digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=0.25, stratify=labels, random_state=0)
    x_train, y_train = torch.from_numpy(x_train), torch.from_numpy(y_train)
    x_test, y_test = torch.from_numpy(x_test), torch.from_numpy(y_test)

    model = LeNet5()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    generator = torch.Generator().manual_seed(args.seed)
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(x_train), generator=generator)
        for start in range(0, len(order), 32):
            batch = order[start:start + 32]
            loss = F.cross_entropy(model(random_shift(x_train[batch], generator)), y_train[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if (epoch + 1) % 10 == 0:
            print(f"epoch {epoch + 1:3d}: loss {loss.item():.4f}, "
                  f"train accuracy {accuracy(model, x_train, y_train):.4f}")

    heldout = accuracy(model, x_test, y_test)
    print(f"held-out accuracy: {heldout:.4f} ({round(heldout * len(y_test))}/{len(y_test)}) "
          f"on {len(y_test)} held-out digits, trained on {len(y_train)}")

    args.out.mkdir(parents=True, exist_ok=True)
    weights = {name: p.detach().numpy().astype(np.float32)
               for name, p in model.state_dict().items()}
    np.savez_compressed(
        args.out / "lenet5_digits.npz", **weights,
        heldout_accuracy=np.float64(heldout), n_train=np.int64(len(y_train)),
        n_heldout=np.int64(len(y_test)), seed=np.int64(args.seed), epochs=np.int64(args.epochs),
        torch_version=np.str_(torch.__version__))
    first_of_each = [int(np.flatnonzero(y_test.numpy() == k)[0]) for k in range(10)]
    np.savez_compressed(args.out / "digits.npz", images=x_test[first_of_each].numpy(),
                        labels=y_test[first_of_each].numpy())

    # the NumPy model the demo builds from these files computes the same logits as torch
    sys.path.insert(0, str(ROOT))
    import lrp_core.models

    with torch.no_grad():
        expected = model.eval()(x_test).numpy()
    graph = lrp_core.models.lenet5_digits(np.float32, path=args.out / "lenet5_digits.npz")
    got = graph.forward(x_test.numpy())
    print(f"NumPy model vs torch: max |logit difference| = {np.max(np.abs(got - expected)):.2e}")
    print(f"wrote {args.out / 'lenet5_digits.npz'} and {args.out / 'digits.npz'}")


if __name__ == "__main__":
    main()
