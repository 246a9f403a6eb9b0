"""The dataset explorer: a class's images with their tags, the long tail, the near-twin pairs.

Images are drawn only from the synthetic generator's output (it writes ``generator.json``), or,
for real data, only in a live JupyterLab session: a stored notebook never shows a real face.

    explorer = DatasetExplorer("../data/synthetic-smoke")
    explorer          # in JupyterLab: pick a class; tabs for the long tail and the near twins
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from animesion_lib.data.layout import Sample, available_splits, class_file, detect_layout, read_classes, read_split
from animesion_lib.errors import DatasetError
from animesion_lib.explore import live_jupyter_session


def is_synthetic(root: str | Path) -> bool:
    """Whether ``root`` was written by the synthetic generator (its stamp is there)."""
    return (Path(root) / "generator.json").is_file()


def check_may_show_images(root: str | Path) -> None:
    """Raise unless ``root``'s images may be drawn here: synthetic data, or real data in a live session."""
    if not is_synthetic(root) and not live_jupyter_session():
        raise DatasetError("real images are shown only in a live JupyterLab session, never in a stored "
                           "notebook (this folder has no generator.json: it is not synthetic)", path=root)


def class_names(root: str | Path) -> list[str]:
    """The dataset's class names, in class-id order."""
    return read_classes(class_file(root, detect_layout(root)))


def all_samples(root: str | Path) -> list[Sample]:
    """Every labelled image of every split, with its tags where the split has a tag file."""
    layout = detect_layout(root)
    tagged = set(available_splits(root, layout, with_tags=True))
    return [s for split in available_splits(root, layout)
            for s in read_split(root, layout, split, with_tags=split in tagged)]


def images_per_class(root: str | Path) -> Counter:
    """Class name -> number of images over all splits (classes without images count 0)."""
    classes = class_names(root)
    counts = Counter({name: 0 for name in classes})
    counts.update(classes[s.class_id] for s in all_samples(root))
    return counts


def twin_pairs(root: str | Path) -> list[tuple[str, str, str]]:
    """The generator's near-twin pairs ``(character, twin, what tells them apart)``, each pair once."""
    path = Path(root) / "characters.json"
    if not path.is_file():
        return []  # real data: nobody recorded which characters look alike
    try:
        table = {c["name"]: c for c in json.loads(path.read_text())}
        pairs = {tuple(sorted((n, c["twin_of"]))) for n, c in table.items() if c.get("twin_of")}
        return [(a, b, _difference(table[a], table[b])) for a, b in sorted(pairs)]
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as err:
        raise DatasetError(f"not a characters table the generator writes ({err!r})", path=path) from None


def _difference(a: dict, b: dict) -> str:
    """What tells two sisters apart, e.g. ``mark: none vs mole_under_eye``, from their recorded attributes."""
    first, second = a.get("attributes", {}), b.get("attributes", {})
    differing = [k for k in first if first[k] != second.get(k)]
    if not differing:  # attributes not recorded: the generator's name for the difference
        return a.get("twin_difference") or b.get("twin_difference") or ""
    return "; ".join(f"{k}: {_text(first[k])} vs {_text(second.get(k))}" for k in differing)


def _text(value) -> str:
    return ", ".join(map(str, value)) or "none" if isinstance(value, list) else str(value)


def plot_class(root: str | Path, name: str, images: int = 8, columns: int = 4, tags_shown: int = 6):
    """A class's first ``images`` images (by file name), each with its first tags, three a line."""
    from animesion_lib import plots

    check_may_show_images(root)
    classes = class_names(root)
    if name not in classes:
        raise DatasetError(f"no class {name!r}", path=class_file(root, detect_layout(root)))
    chosen = sorted((s for s in all_samples(root) if classes[s.class_id] == name), key=lambda s: s.rel)[:images]
    lines = lambda tags: [", ".join(tags[i:i + 3]) for i in range(0, len(tags), 3)] or ["(no tags)"]
    captions = ["\n".join(lines(list(s.tags or ())[:tags_shown])) for s in chosen]
    fig = plots.plot_image_grid([s.path for s in chosen], captions, columns=columns, cell=2.2,
                                title=f"{name}: {len(chosen)} images and their first tags")
    fig.subplots_adjust(hspace=0.3)  # room for two caption lines between the rows
    return fig


def plot_long_tail(root: str | Path, highlight: str | None = None):
    """Images per class, largest first, on a log scale; ``highlight`` marks one class's place."""
    from animesion_lib import plots

    counts = images_per_class(root)
    fig = plots.plot_class_sizes(list(counts.values()), title=f"Images per class ({len(counts)} classes)")
    if highlight is not None:
        ranked = [name for name, _ in counts.most_common()]
        ax = fig.axes[0]
        ax.scatter([ranked.index(highlight) + 1], [counts[highlight]], color="tab:red", zorder=3, label=highlight)
        ax.legend(fontsize=7)
    return fig


def plot_twins(root: str | Path, pairs: int = 4):
    """The first ``pairs`` near-twin pairs, one image of each side by side, with what differs."""
    from animesion_lib import plots

    check_may_show_images(root)
    first_image = {}
    classes = class_names(root)
    for s in sorted(all_samples(root), key=lambda s: s.rel):
        first_image.setdefault(classes[s.class_id], s.path)
    chosen = [p for p in twin_pairs(root) if p[0] in first_image and p[1] in first_image][:pairs]
    if not chosen:
        raise DatasetError("no near-twin pairs recorded (characters.json lists none)", path=root)
    paths = [first_image[n] for a, b, _ in chosen for n in (a, b)]
    captions = [f"{n.split('_(')[0]}\n{what if i == 0 else '(its twin)'}" for a, b, what in chosen
                for i, n in enumerate((a, b))]
    return plots.plot_image_grid(paths, captions, columns=4, cell=2.2, title="Near-twin pairs, side by side")


class DatasetExplorer:
    """The JupyterLab widget: pick a class to see its images and tags; the long tail and twins in tabs."""

    def __init__(self, root: str | Path, images: int = 8):
        import ipywidgets as w

        self.root, self.images = Path(root), images
        counts = images_per_class(self.root)
        self.picker = w.Dropdown(options=[(f"{n} ({c})", n) for n, c in counts.most_common()], description="class")
        self.grid, self.tail, self.twins = w.Output(), w.Output(), w.Output()
        self.picker.observe(lambda _: self.refresh(), "value")
        self.widget = w.Tab([w.VBox([self.picker, self.grid]), self.tail, self.twins],
                            titles=("a class", "long tail", "near twins"))
        self._draw(self.twins, lambda: plot_twins(self.root))
        self.refresh()

    def _draw(self, output, make_figure) -> None:
        import matplotlib.pyplot as plt
        from IPython.display import display

        output.clear_output(wait=True)
        with output:
            try:
                figure = make_figure()
            except DatasetError as err:
                print(err)
                return
            display(figure)
            plt.close(figure)

    def refresh(self) -> None:
        """Draw the picked class's grid and mark it on the long tail."""
        self._draw(self.grid, lambda: plot_class(self.root, self.picker.value, self.images))
        self._draw(self.tail, lambda: plot_long_tail(self.root, highlight=self.picker.value))

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
