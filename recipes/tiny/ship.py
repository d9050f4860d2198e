"""The last stage of the tiny world: copy the checkpoints into the package.

Usage: python recipes/tiny/ship.py WORK_DIR [DEST]   (DEST: plugins/tiny_world)

Writes DEST/generator, DEST/prm and DEST/prm-calibrated. A model that is byte-identical to one
already shipped is not copied again: the PRM's reference is the generator, and a calibration
that kept the backbone frozen shares the PRM's models; their ``prmh_prm.json`` then points to
the shipped copy by a relative path.
"""

from __future__ import annotations

import filecmp
import json
import shutil
import sys
from pathlib import Path

MODEL_FILES = ("config.json", "generation_config.json", "model.safetensors")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")


def copy_model(source: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for name in (*MODEL_FILES, *TOKENIZER_FILES):
        if (source / name).is_file():
            shutil.copy2(source / name, dest / name)


def same_weights(a: Path, b: Path) -> bool:
    return filecmp.cmp(a / "model.safetensors", b / "model.safetensors", shallow=False)


def main(work: Path, dest: Path) -> None:
    if dest.exists():
        shutil.rmtree(dest)
    copy_model(work / "generator", dest / "generator")
    shipped = {"generator": work / "generator"}
    for name in ("prm", "prm-calibrated"):
        config = json.loads((work / name / "prmh_prm.json").read_text())
        options = config["options"]
        source_ref = work / name / options["reference"]
        (dest / name).mkdir(parents=True)
        policy = next((k for k, v in shipped.items() if same_weights(v, work / name)), None)
        if policy is None:
            copy_model(work / name, dest / name)
            shipped[name] = work / name
        else:
            options["model"] = f"../{policy}"
        ref = next((k for k, v in shipped.items() if same_weights(v, source_ref)), None)
        if ref is None:
            raise SystemExit(f"{name}'s reference is not the generator; nothing to point it to.")
        # the reference is read relative to the policy model's directory
        options["reference"] = f"../{ref}"
        (dest / name / "prmh_prm.json").write_text(json.dumps(config, indent=1) + "\n")
    total = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    print(f"shipped {dest}: {total / 2**20:.1f} MiB")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2] if len(sys.argv) > 2 else "plugins/tiny_world"))
