"""The pilot that chose the synthetic world and the mini sweeps' budget (issue 14).

In memory, no FFCV: hashtag pretraining of rx-tiny (multi-label softmax over the world's raw
hashtags seen at least 5 times, noise tags dropped; ``tests/synthetic_pretrain.py``) on the
first N images of the synthetic corpus for a fixed budget of images seen, then a linear probe on
``synthetic_in`` (every stage pooled, 60 train images per class and 10 per class, 50 val per
class) beside a random-init network with batch-norm statistics re-estimated on the target.
One seed: a pilot, not a finding (the sweeps give those, with seeds and intervals).

    python scripts/world_pilot.py [SIZE] [IMAGES_SEEN] [N,N,...]       # default 64 24000 250,8000
    ROOT=/path/to/another/checkout python scripts/world_pilot.py ...   # another commit's world

Prints one line per pretraining (N, (top-1 at 60/class, top-1 at 10/class), seconds) and a final
``RESULT`` line with all of them and the random baseline.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time

ROOT = os.environ.get("ROOT") or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

from datamodules.sources import load_target  # noqa: E402
from experiments.config import load_config  # noqa: E402
from experiments.pretrain import run_pretrain  # noqa: E402
from lightning_modules.backbone_loading import load_backbone  # noqa: E402
from lightning_modules.features import (  # noqa: E402
    extract_split_features,
    recalibrate_batchnorm,
)
from lightning_modules.linear_probe import linear_probe  # noqa: E402
from tests.synthetic_pretrain import SyntheticTagsDataModule  # noqa: E402

RX_TINY = os.path.join(ROOT, "configs", "model", "rx-tiny.yaml")  # the model the sweeps use
CLASSES = 50


def batches(split, n: int):
    import numpy as np

    for i in range(0, n, 128):
        items = [split[k] for k in range(i, min(n, i + 128))]
        images = torch.from_numpy(np.stack([im for im, _ in items])).permute(0, 3, 1, 2)
        yield images.contiguous(), torch.tensor([c for _, c in items])


def main() -> None:
    size, seen = (int(a) for a in (sys.argv[1:3] if len(sys.argv) > 2 else ("64", "24000")))
    sizes = [int(x) for x in (sys.argv[3] if len(sys.argv) > 3 else "250,8000").split(",")]
    cpu = torch.device("cpu")
    target = load_target("synthetic_in", image_size=size, seed=0, cache_dir="", max_per_class=60)
    train = list(batches(target.train, len(target.train)))
    val = list(batches(target.val, len(target.val)))

    def probe(net) -> tuple[float, float]:
        xt, yt = extract_split_features(net, train, "all", cpu)
        xv, yv = extract_split_features(net, val, "all", cpu)
        yt = torch.as_tensor(yt)
        few = torch.cat([torch.nonzero(yt == c)[:10, 0] for c in range(CLASSES)])
        full = linear_probe(xt, yt, xv, yv, CLASSES, [1e-3, 1e-2, 1e-1, 1.0], seed=0).top1
        shot = linear_probe(xt[few], yt[few], xv, yv, CLASSES, [1e-2, 1e-1, 1.0, 10.0], seed=0)
        return round(full, 4), round(shot.top1, 4)

    out, tmp = {}, tempfile.mkdtemp()
    for n in sizes:
        start = time.time()
        cfg = load_config(
            RX_TINY,
            [
                f"runs_dir={tmp}",
                f"name=pre{n}",
                "logging.wandb=false",
                "data.loading.batch_size=64",
                f"schedule.images_seen={seen}",
                "schedule.warmup_images=1000",
                "trainer.checkpoint_every_n_steps=100000",
                "trainer.accelerator=cpu",
                "optim.base_lr=0.1",
            ],
        )
        dm = SyntheticTagsDataModule(num_train=n, num_val=64, image_size=size, batch_size=64)
        run = run_pretrain(cfg, dm)
        out[f"pre{n}"] = probe(load_backbone(str(run), cfg.model, seed=0).net)
        print(n, out[f"pre{n}"], round(time.time() - start), flush=True)
    net = load_backbone("", cfg.model, seed=0).net
    recalibrate_batchnorm(net, train, max_images=1000, device=cpu)
    out["random"] = probe(net)
    print("RESULT", size, seen, json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
