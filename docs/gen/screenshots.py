"""The docs' pictures, from a real run: a small asha search on generated images, its report and
its dashboard photographed in headless Chromium, and asha's rungs drawn from the same study.

    python -m docs.gen.screenshots             # rewrites docs/img/*.png (minutes, on a CPU)
    python -m docs.gen.screenshots --keep DIR  # keeps the study and its files in DIR, to reuse

Everything runs as a user runs it, through `python -m search` (the checkout's, from the repository
root): `run` on a study file, `report -o`, `dashboard` on a free port. The images are the tests'
(tests/helpers/images.py: four classes told apart by colour and stripes, 32 px), so the search
trains in seconds a trial and its accuracies mean nothing; the pictures show what each view looks
like, not a result. Chromium (the Debian package `chromium`, or Chrome) takes the screenshots; the
rungs figure is a Plotly figure written as PNG through kaleido where it is installed, else
photographed the same way. Each PNG is cropped and reduced to a palette to stay small in git.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import optuna
from PIL import Image

from docs.gen.rungs_figure import rungs_figure
from search import attrs
from search.results.png import png_obstacle
from search.study.optuna_compat import study_id_of
from search.study.promotion import never_ran, rungs
from tests.helpers.browser import CHROMIUM_FLAGS
from tests.helpers.dashboard import free_port
from tests.helpers.images import make_image_folder

ROOT = Path(__file__).resolve().parents[2]
IMG = ROOT / "docs" / "img"
NAME = "shots"
URL = "sqlite:///studies.db"  # relative: in the folder every command runs in
EPOCHS, MIN_EPOCHS, REDUCTION_FACTOR, TRIALS = 4, 1, 2, 10
# The dashboard is a JavaScript app that polls its API: virtual time lets it fetch and draw
RENDER_MS = 15000
MAX_BYTES = 200_000  # each picture, in git


def hpsearch(work: Path, *arguments: str) -> str:
    """`python -m search ARGUMENTS` of this checkout, run in `work` (so the pictures name the
    storage `sqlite:///studies.db`, not a temporary path); its output, or the run's failure."""
    result = subprocess.run(
        [sys.executable, "-m", "search", *arguments],
        cwd=work,
        env=checkout_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        sys.exit(f"hpsearch {' '.join(arguments)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def checkout_env() -> dict[str, str]:
    """The environment with this checkout first on the import path: `search` must be its own,
    not another installed one."""
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{path}" if path else str(ROOT)}


def study_file(images: Path) -> str:
    return f"""
[study]
name = "{NAME}"
trials = {TRIALS}
seed = 3

[data]
source = "{images}"
image_size = 32
batch_size = 32

[train]
epochs = {EPOCHS}
schedule = "cosine"

[space]
optimizer = ["sgd", "adam"]
lr = {{ low = 1e-5, high = 1e-2 }}
eps = {{ low = 1e-8, high = 1e-6 }}
momentum = {{ low = 0.0, high = 0.9 }}

[pruner]
kind = "asha"
min_epochs = {MIN_EPOCHS}
reduction_factor = {REDUCTION_FACTOR}
"""


def run_study(work: Path) -> None:
    """Run the small asha search in `work`, its study in `work`/studies.db."""
    # Four classes and a slow learning rate for some trials: scores that differ at a rung
    images = make_image_folder(work / "images", classes=4, train_per_class=24, val_per_class=15)
    path = work / f"{NAME}.toml"
    path.write_text(study_file(images))
    hpsearch(
        work, "run", path.name, "--storage", URL, "--device", "cpu", "--no-progress",
        "--cache-dir", "cache", "--checkpoint-dir", "checkpoints",
    )  # fmt: skip


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    found = found or shutil.which("google-chrome")
    if found is None:
        sys.exit("the screenshots need Chromium or Chrome: apt-get install chromium")
    return found


def screenshot(url: str, path: Path, width: int, height: int) -> None:
    """Photograph `url` at width x height CSS pixels once its scripts have run."""
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run(
            [
                chromium(), *CHROMIUM_FLAGS, "--hide-scrollbars", f"--user-data-dir={profile}",
                f"--window-size={width},{height}", f"--virtual-time-budget={RENDER_MS}",
                f"--screenshot={path}", url,
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )  # fmt: skip
    if result.returncode != 0 or not path.exists():
        sys.exit(f"chromium could not photograph {url}:\n{result.stderr[-2000:]}")


def shrink(path: Path, box: tuple[int, int, int, int] | None = None, width: int = 1100) -> None:
    """Crop to `box` (left, top, right, bottom), scale to `width` and reduce to a palette: a
    screenshot of flat colours reads the same in 256 of them, at a third of the bytes."""
    image = Image.open(path).convert("RGB")
    if box is not None:
        image = image.crop(box)
    if image.width > width:
        image = image.resize(
            (width, round(image.height * width / image.width)), Image.Resampling.LANCZOS
        )
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    if path.stat().st_size > MAX_BYTES:
        sys.exit(f"{path} is {path.stat().st_size:,} bytes, over {MAX_BYTES:,}: crop it further")


def report_shot(work: Path, out: Path) -> None:
    """The report's summary and its first figure."""
    hpsearch(work, "report", "--study", NAME, "--storage", URL, "-o", "report.html")
    shot = out / "report.png"
    screenshot((work / "report.html").as_uri(), shot, 1200, 1270)
    shrink(shot)


def dashboard_shots(work: Path, out: Path) -> None:
    """The study's page, and the notes of a paused trial and of the continuation that promoted it
    (one picture, the first above the second)."""
    study = load_study(work)
    continuation = next(
        trial
        for trial in study.get_trials(deepcopy=False)
        if attrs.PROMOTION_OF in trial.user_attrs and not never_ran(trial)
    )
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "search", "dashboard", "--storage", URL, "--port", str(port)],
        cwd=work,
        env=checkout_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}/dashboard/studies/{study_id_of(study)}"
    try:
        wait_until_serving(f"http://127.0.0.1:{port}/api/meta", server)
        screenshot(base, out / "dashboard.png", 1400, 1300)
        shrink(out / "dashboard.png", box=(0, 0, 1400, 1225))  # down to the timeline's end
        pages = []
        # Heights that show each trial's heading and note: the continuation's has two sections
        # when it paused again
        paused = continuation.user_attrs[attrs.PROMOTION_OF]
        for number, height in ((paused, 420), (continuation.number, 640)):
            page = work / f"trial-{number}.png"
            screenshot(f"{base}/trials?numbers={number}", page, 1400, height)
            pages.append(page)
        stack(pages, out / "dashboard-notes.png")
        shrink(out / "dashboard-notes.png")
    finally:
        server.terminate()
        server.wait(timeout=30)


def stack(pages: list[Path], path: Path) -> None:
    """The pictures one above the other, a grey rule between them."""
    images = [Image.open(page).convert("RGB") for page in pages]
    width, rule = max(image.width for image in images), 6
    stacked = Image.new("RGB", (width, sum(i.height for i in images) + rule), (150, 150, 150))
    top = 0
    for image in images:
        stacked.paste(image, (0, top))
        top += image.height + rule
    stacked.save(path)


def wait_until_serving(url: str, server: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"the dashboard exited with {server.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    sys.exit(f"the dashboard did not answer on {url} within {seconds:.0f} s")


def load_study(work: Path) -> optuna.Study:
    return optuna.load_study(study_name=NAME, storage=f"sqlite:///{work / 'studies.db'}")


def rungs_shot(work: Path, out: Path) -> None:
    study = load_study(work)
    figure = rungs_figure(
        study.get_trials(deepcopy=False), rungs(MIN_EPOCHS, REDUCTION_FACTOR, EPOCHS), EPOCHS
    )
    shot = out / "rungs-real.png"
    width, height = 1000, figure.layout.height
    if png_obstacle() is None:  # kaleido, as `report --png-dir` writes PNGs
        figure.write_image(shot, width=width, height=height, scale=1)
    else:  # the figure's page, photographed
        page = work / "rungs.html"
        figure.write_html(page, include_plotlyjs=True, config={"staticPlot": True})
        screenshot(page.as_uri(), shot, width, height)
    shrink(shot)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m docs.gen.screenshots", description=__doc__)
    parser.add_argument("--out", type=Path, default=IMG, help="where the PNGs go (docs/img)")
    parser.add_argument(
        "--keep",
        type=Path,
        help="keep the study, report and images in this folder, and reuse a study kept there",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as temporary:
        work = args.keep or Path(temporary)
        work.mkdir(parents=True, exist_ok=True)
        args.out.mkdir(parents=True, exist_ok=True)
        if args.keep and (work / "studies.db").exists():
            print(f"reusing the study in {work / 'studies.db'}")
        else:
            started = time.monotonic()
            run_study(work)
            print(f"study run in {time.monotonic() - started:.0f} s, in {work}")
        rungs_shot(work, args.out)
        report_shot(work, args.out)
        dashboard_shots(work, args.out)
    for path in sorted(args.out.glob("*.png")):
        print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: "
              f"{path.stat().st_size // 1000} KB")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
