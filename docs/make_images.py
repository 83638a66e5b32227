"""Draw every picture of docs/ (docs/lessons.md and docs/pictures.md) from the shipped configs.

    python docs/make_images.py            # two minutes on a 2-core CPU; writes docs/images/*.png
    python docs/make_images.py task       # one picture

Each picture is one figure of the suite, drawn from the runs of the commands its lesson shows (the
same configs and overrides, trained into a temporary results folder): nothing is drawn by hand, so
when the suite changes, running this again brings the pictures up to date.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# picture -> (the `run` commands of its lesson: config and overrides; the figure to draw)
PICTURES = {
    "lesson_1_five_losses": ([("five_losses", [])], "task"),
    "lesson_2_outliers": ([("outliers", []), ("outliers", ["loss.name=mae"])], "task"),
    "lesson_2_mae_jumping": (
        [
            ("mae_jumping", []),
            ("mae_jumping", ["optim.schedule=inverse_time"]),
            ("mae_jumping", ["loss.name=mse"]),
        ],
        "linear",
    ),
    "lesson_3_hinge_margin": ([("hinge_margin", []), ("hinge_margin", ["loss=bce"])], "task"),
    "lesson_3_hinge_loss": ([("hinge_margin", []), ("hinge_margin", ["loss=bce"])], "linear"),
    "lesson_4_nielsen_neuron": ([("nielsen_neuron", []), ("nielsen_neuron", ["loss.name=bce"])], "linear"),
    "lesson_5_deep_sigmoid": (
        [("deep_sigmoid", []), ("deep_sigmoid", ["model.activation=relu", "model.init=kaiming_uniform"])],
        "grad_profile",
    ),
    "lesson_5_sweep_activations": ([("sweep_activations", [])], "sweep_summary"),
    "lesson_6_init_scale": ([("init_scale", [])], "grad_profile"),
    "lesson_7_likelihood": ([("likelihood", []), ("likelihood", ["loss.name=mae"])], "task"),
    # docs/pictures.md: one of each figure, from the commands that page names
    "sweep_summary": ([("sweep_activations", [])], "sweep_summary"),
    "grad_heatmap_out": ([("sweep_activations", [])], "grad_heatmap_out"),
    "grad_profile": ([("sweep_activations", [])], "grad_profile"),
    "task": ([("outliers", []), ("outliers", ["loss.name=mae"])], "task"),
    "linear": ([("nielsen_neuron", []), ("nielsen_neuron", ["loss.name=bce"])], "linear"),
    "loss_curves": ([("nielsen_neuron", []), ("nielsen_neuron", ["loss.name=bce"])], "loss_curves"),
    # the loss landscape (`lossbench landscape`), from runs kept apart in results/ground as the lessons do
    "lesson_2_landscape": (
        [("outliers", [f"loss.name={loss}", "train.snapshots=20"]) for loss in ("mse", "mae", "huber")],
        "landscape",
    ),
    "lesson_4_landscape": (
        [
            ("nielsen_neuron", ["train.snapshots=30"]),
            ("nielsen_neuron", ["loss.name=bce", "train.snapshots=30"]),
        ],
        "landscape",
    ),
    "lesson_5_landscape": (
        [
            ("deep_sigmoid", ["train.snapshots=20"]),
            ("deep_sigmoid", ["model.activation=relu", "model.init=kaiming_uniform", "train.snapshots=20"]),
        ],
        "landscape",
    ),
}


def draw(name: str, commands: list, figure: str, results: str) -> str:
    """Train the commands' runs into `results` and write docs/images/<name>.png; returns its path."""
    from lossbench.cli import main
    from lossbench.viz.figures import FIGURES, render
    from lossbench.viz.load import group_runs, load_runs

    folders = []
    results = os.path.join(results, "ground") if figure == "landscape" else results
    for config, overrides in commands:
        code = main(
            ["run", os.path.join(ROOT, "configs", f"{config}.yaml"), *overrides, "--out", results, "--quiet"]
        )
        if code != 0:
            raise SystemExit(f"{config} {' '.join(overrides)} exited {code}")
        folders.append(os.path.join(results, config))
    if figure == "landscape":  # computed from the runs' weights, not drawn from their files alone
        if main(["landscape", folders[0]]) != 0:
            raise SystemExit(f"landscape {folders[0]} failed")
        path = os.path.join(HERE, "images", f"{name}.png")
        shutil.copyfile(os.path.join(folders[0], "figures", "landscape.png"), path)
        return path
    groups = group_runs(load_runs(list(dict.fromkeys(folders))))
    fig = FIGURES[figure](groups)
    path = os.path.join(HERE, "images", f"{name}.png")
    with open(path, "wb") as f:
        f.write(render(fig, "png"))
    return path


def main(names: list[str]) -> int:
    import torch

    torch.set_num_threads(1)
    results = tempfile.mkdtemp(prefix="lossbench-images-")
    try:
        for name in names or PICTURES:
            commands, figure = PICTURES[name]
            print(draw(name, commands, figure, results))
    finally:
        shutil.rmtree(results, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, ROOT)
    sys.exit(main(sys.argv[1:]))
