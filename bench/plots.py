"""Pictures for docs/benchmarks.md: each benchmark draws its curve, as a PNG under docs/benchmarks/.

matplotlib (a development dependency) with its Agg backend: no display, no fonts from the system
beyond matplotlib's own. Each function returns the Markdown that shows the picture."""

from __future__ import annotations

from collections.abc import Sequence

from bench.common import DOC

FOLDER = DOC.parent / "benchmarks"


def _figure(title: str, xlabel: str, ylabel: str) -> tuple[object, object]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7.5, 4.2), dpi=100)
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.grid(True, alpha=0.3)
    return figure, axes


def _save(figure: object, name: str, title: str) -> str:
    import matplotlib.pyplot as plt

    FOLDER.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()  # type: ignore[attr-defined]
    figure.savefig(FOLDER / f"{name}.png", metadata={"Software": None})  # type: ignore[attr-defined]
    plt.close(figure)  # type: ignore[arg-type]
    return f"![{title}](benchmarks/{name}.png)"


def lines(
    name: str,
    title: str,
    xlabel: str,
    ylabel: str,
    series: dict[str, Sequence[tuple[float, float]]],
    *,
    limits: dict[str, float] | None = None,
    log_x: bool = False,
) -> str:
    """One curve per series; `limits` draws dashed horizontal lines (a provider's rate limit, say)."""
    figure, axes = _figure(title, xlabel, ylabel)
    for label, points in series.items():
        xs, ys = zip(*sorted(points), strict=True)
        axes.plot(xs, ys, marker="o", label=label)  # type: ignore[attr-defined]
    for label, value in (limits or {}).items():
        axes.axhline(value, linestyle="--", color="tab:red", label=label)  # type: ignore[attr-defined]
    if log_x:
        axes.set_xscale("log")  # type: ignore[attr-defined]
    axes.set_ylim(bottom=0)  # type: ignore[attr-defined]
    axes.legend()  # type: ignore[attr-defined]
    return _save(figure, name, title)


def bars(name: str, title: str, ylabel: str, values: dict[str, float], *, baseline: str | None = None) -> str:
    """One bar per name; the baseline's bar in grey, and its height as a dotted line across."""
    figure, axes = _figure(title, "", ylabel)
    names = list(values)
    colours = ["tab:grey" if n == baseline else "tab:blue" for n in names]
    axes.bar(names, [values[n] for n in names], color=colours)  # type: ignore[attr-defined]
    if baseline is not None:
        axes.axhline(values[baseline], linestyle=":", color="tab:grey")  # type: ignore[attr-defined]
    axes.tick_params(axis="x", labelrotation=60)  # type: ignore[attr-defined]
    return _save(figure, name, title)
