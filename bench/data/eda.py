"""Exploratory analysis of the three datasets: a Markdown report with its figures per dataset.

Each `eda_<name>(out_dir)` reads its data through the catalogue's checked reader (bench.data.datasets),
so a bad file stops with the same one-line error as `bench data verify`, then writes
`out_dir/README.md` and PNG figures beside it. Numbers in the text are computed here, never typed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from tabulate import tabulate  # noqa: E402

from bench.data.datasets import (  # noqa: E402
    AI4I_MODES,
    AI4I_SENSORS,
    UNSW_NUMERIC,
    dataset,
    load_checked,
)

HEALTHY, FAILING = "#4C72B0", "#DD8452"


@dataclass
class EdaReport:
    """A Markdown report assembled section by section; figures are saved beside it."""

    title: str
    out_dir: Path
    lines: list[str] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)

    def text(self, *paragraphs: str) -> None:
        for p in paragraphs:
            self.lines += [p, ""]

    def heading(self, text: str) -> None:
        self.lines += [f"## {text}", ""]

    def table(self, rows: list[list] | pd.DataFrame, headers: list[str] | str = "keys", floatfmt: str = ".3f") -> None:
        self.lines += [tabulate(rows, headers=headers, tablefmt="github", floatfmt=floatfmt, showindex=False), ""]

    def figure(self, fig: plt.Figure, name: str, caption: str) -> None:
        fig.tight_layout()
        fig.savefig(self.out_dir / name, dpi=110)
        plt.close(fig)
        self.figures.append(name)
        self.lines += [f"![{caption}]({name})", "", f"*{caption}*", ""]

    def write(self) -> Path:
        path = self.out_dir / "README.md"
        path.write_text("\n".join([f"# {self.title}", "", *self.lines]).rstrip() + "\n")
        return path


def _pct(x: float) -> str:
    return f"{100 * x:.2f} %"


def _source_line(name: str) -> str:
    ds = dataset(name)
    return f"Data: {ds.title}; {ds.source}. Licence: {ds.licence}."


def _reproduce(name: str) -> str:
    return f"Regenerate with `python -m bench eda {name}` (data from `python -m bench data fetch`, or BENCH_DATA_DIR)."


# ---------------------------------------------------------------------------------------------
# maintenance: AI4I 2020
# ---------------------------------------------------------------------------------------------


def eda_maintenance(out_dir: Path) -> Path:
    frame = load_checked("ai4i2020")
    report = EdaReport("EDA: AI4I 2020 predictive maintenance", out_dir)
    label = frame["Machine failure"]
    report.text(
        _source_line("ai4i2020"),
        f"{len(frame):,} rows; {int(label.sum())} machine failures ({_pct(label.mean())}). "
        "Each row is one machining process; `Machine failure` is 1 when any failure mode occurred.",
        _reproduce("maintenance"),
    )

    report.heading("Failure rate by product type")
    by_type = frame.groupby("Type")["Machine failure"].agg(["count", "sum", "mean"]).reindex(["L", "M", "H"])
    report.table([[t, int(r["count"]), int(r["sum"]), _pct(r["mean"])] for t, r in by_type.iterrows()],
                 ["type (quality)", "rows", "failures", "failure rate"])
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.bar(by_type.index, 100 * by_type["mean"], color=FAILING)
    for i, (n, k) in enumerate(zip(by_type["count"], by_type["sum"], strict=True)):
        ax.text(i, 100 * k / n, f"{int(k)}/{int(n)}", ha="center", va="bottom", fontsize=8)
    ax.set(xlabel="product type (L low, M medium, H high quality)", ylabel="failure rate (%)")
    report.figure(fig, "failure_rate_by_type.png", "Failure rate by product type (failures / rows above each bar)")

    report.heading("Sensor readings, failing vs healthy rows")
    fig, axes = plt.subplots(1, len(AI4I_SENSORS), figsize=(16, 3.2))
    rows = []
    for ax, sensor in zip(axes, AI4I_SENSORS, strict=True):
        healthy, failing = frame.loc[label == 0, sensor], frame.loc[label == 1, sensor]
        bins = np.histogram_bin_edges(frame[sensor], bins=40)
        ax.hist(healthy, bins=bins, density=True, alpha=0.6, color=HEALTHY, label="healthy")
        ax.hist(failing, bins=bins, density=True, alpha=0.6, color=FAILING, label="failing")
        ax.set(xlabel=sensor, yticks=[])
        rows.append([sensor, healthy.median(), failing.median(), healthy.std(), failing.std()])
    axes[0].legend(fontsize=8)
    report.table(rows, ["sensor", "median healthy", "median failing", "std healthy", "std failing"], ".1f")
    report.figure(fig, "sensors_failing_vs_healthy.png",
                  "Density of each sensor reading for healthy (blue) and failing (orange) rows")

    report.heading("Failure-mode co-occurrence")
    modes = frame[list(AI4I_MODES)].astype(int)
    co = modes.T @ modes
    report.text(
        "Counts of rows with both modes set (diagonal: rows with that mode). "
        f"{int((modes.sum(axis=1) > 1).sum())} rows have more than one mode; "
        f"{int(((label == 1) & (modes.sum(axis=1) == 0)).sum())} failures have no mode set, and "
        f"{int(((label == 0) & (modes['RNF'] == 1)).sum())} rows have RNF (random failure) set without a machine failure."
    )
    report.table([[m, *co.loc[m].tolist()] for m in AI4I_MODES], ["mode", *AI4I_MODES], "d")
    fig, ax = plt.subplots(figsize=(4.6, 4))
    ax.imshow(np.log1p(co.to_numpy()), cmap="Oranges")
    for i in range(len(AI4I_MODES)):
        for j in range(len(AI4I_MODES)):
            ax.text(j, i, int(co.iat[i, j]), ha="center", va="center", fontsize=9)
    ax.set_xticks(range(len(AI4I_MODES)), AI4I_MODES)
    ax.set_yticks(range(len(AI4I_MODES)), AI4I_MODES)
    report.figure(fig, "failure_mode_cooccurrence.png", "Failure-mode co-occurrence (rows with both modes)")

    report.heading("Failure rate against tool wear, temperature difference and power")
    derived = {
        "Tool wear [min]": frame["Tool wear [min]"],
        "process - air temperature [K]": frame["Process temperature [K]"] - frame["Air temperature [K]"],
        "power [W] = torque x angular speed": frame["Torque [Nm]"] * frame["Rotational speed [rpm]"] * 2 * np.pi / 60,
    }
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.4))
    for ax, (name, values) in zip(axes, derived.items(), strict=True):
        bins = pd.cut(values, bins=20)
        rate = label.groupby(bins, observed=True).agg(["mean", "count"])
        centres = [interval.mid for interval in rate.index]
        ax.plot(centres, 100 * rate["mean"], marker="o", color=FAILING)
        ax.set(xlabel=name, ylabel="failure rate (%)")
        ax2 = ax.twinx()
        ax2.bar(centres, rate["count"], width=(centres[1] - centres[0]) * 0.8, alpha=0.15, color="grey")
        ax2.set_ylabel("rows per bin", color="grey")
        ax.set_zorder(ax2.get_zorder() + 1)
        ax.patch.set_visible(False)
    report.figure(fig, "failure_rate_vs_wear_tempdiff_power.png",
                  "Failure rate in 20 equal-width bins (line) and rows per bin (grey bars)")
    hdf = frame["HDF"] == 1
    pwf = frame["PWF"] == 1
    twf = frame["TWF"] == 1
    report.text(
        "The three derived quantities are the physics behind three failure modes: "
        f"heat-dissipation failures (HDF) occur only at temperature differences up to "
        f"{derived['process - air temperature [K]'][hdf].max():.1f} K; "
        f"power failures (PWF) at powers below {derived['power [W] = torque x angular speed'][pwf & (derived['power [W] = torque x angular speed'] < 6000)].max():.0f} W "
        f"or above {derived['power [W] = torque x angular speed'][pwf & (derived['power [W] = torque x angular speed'] > 6000)].min():.0f} W; "
        f"tool-wear failures (TWF) at tool wear of {frame.loc[twf, 'Tool wear [min]'].min():.0f} min or more. "
        "This is why the maintenance workload feeds the temperature difference and the power as inputs."
    )
    return report.write()


# ---------------------------------------------------------------------------------------------
# traffic: UNSW-NB15
# ---------------------------------------------------------------------------------------------


def _univariate_auc(values: pd.Series, label: pd.Series) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(label, values))


def eda_traffic(out_dir: Path) -> Path:
    ds = dataset("unsw_nb15")
    parts = []
    for f in ds.files:
        if f.path.is_file() or not f.optional:
            part = load_checked("unsw_nb15", f.name)
            part["partition"] = f.role
            parts.append(part)
    frame = pd.concat(parts, ignore_index=True)
    label = frame["label"]
    report = EdaReport("EDA: UNSW-NB15 network traffic", out_dir)
    report.text(
        _source_line("unsw_nb15"),
        f"Partitions analysed: {', '.join(f'{p} ({n:,} rows)' for p, n in frame['partition'].value_counts().items())}. "
        f"{int(label.sum()):,} attack rows ({_pct(label.mean())}), {int((label == 0).sum()):,} normal. "
        "`attack_cat` is `Normal` exactly when `label` is 0: "
        f"{bool(((frame['attack_cat'] == 'Normal') == (label == 0)).all())}.",
        _reproduce("traffic"),
    )

    report.heading("Attack categories")
    counts = frame.groupby("attack_cat")["label"].agg(["count", "max"]).sort_values("count", ascending=False)
    report.table([[c, int(r["count"]), _pct(r["count"] / len(frame)), "attack" if r["max"] else "normal"]
                  for c, r in counts.iterrows()], ["attack_cat", "rows", "share", "label"])
    fig, ax = plt.subplots(figsize=(7, 3.4))
    colours = [HEALTHY if c == "Normal" else FAILING for c in counts.index]
    ax.barh(counts.index[::-1], counts["count"][::-1], color=colours[::-1])
    ax.set(xscale="log", xlabel="rows (log scale)")
    report.figure(fig, "attack_categories.png", "Rows per attack category (blue: normal traffic)")

    report.heading("Features that separate normal from attack traffic")
    rows = []
    for column in UNSW_NUMERIC:
        if column == "id":
            continue
        x = frame[column].astype(float)
        normal, attack = x[label == 0], x[label == 1]
        pooled = np.sqrt((normal.var() + attack.var()) / 2)
        smd = (attack.mean() - normal.mean()) / pooled if pooled > 0 else 0.0
        auc = _univariate_auc(x, label)
        rows.append([column, auc, max(auc, 1 - auc), smd, normal.median(), attack.median()])
    table = pd.DataFrame(rows, columns=["feature", "auc", "separation", "smd", "median normal", "median attack"])
    table = table.sort_values("separation", ascending=False).reset_index(drop=True)
    report.text(
        "Univariate ROC-AUC of each numeric feature as a score for `attack` (0.5 = no information; below 0.5 "
        "the feature is lower for attacks; `separation` = max(AUC, 1 - AUC)). It is rank-based, so the heavy "
        "tails of byte and packet counts do not distort it. The standardised mean difference (SMD, attack mean "
        "minus normal mean over the pooled standard deviation) is given beside it; on these heavy-tailed columns "
        "it can disagree with the AUC. `id` (the row number) is excluded: the file is stored in blocks, attack rows "
        f"having ids {int(frame.loc[label == 1, 'id'].min()):,} to {int(frame.loc[label == 1, 'id'].max()):,}, so its "
        f"AUC of {_univariate_auc(frame['id'], label):.3f} is an artefact of storage order, not a signal. "
        f"Top 15 of {len(table)} numeric features:"
    )
    report.table(table.head(15), "keys", ".3g")
    top = table.head(15)[::-1]
    fig, ax = plt.subplots(figsize=(6, 4.6))
    ax.barh(top["feature"], top["separation"], color=[FAILING if a >= 0.5 else HEALTHY for a in top["auc"]])
    ax.axvline(0.5, color="black", lw=0.8)
    ax.set(xlim=(0.45, 1.0), xlabel="univariate ROC-AUC separation, max(AUC, 1-AUC)")
    report.figure(fig, "feature_separation.png",
                  "The 15 most separating features (orange: higher for attacks, blue: lower for attacks)")
    best = table["feature"].head(4).tolist()
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.2))
    for ax, column in zip(axes, best, strict=True):
        x = np.log1p(frame[column].astype(float).clip(lower=0))
        bins = np.histogram_bin_edges(x, bins=40)
        ax.hist(x[label == 0], bins=bins, density=True, alpha=0.6, color=HEALTHY, label="normal")
        ax.hist(x[label == 1], bins=bins, density=True, alpha=0.6, color=FAILING, label="attack")
        ax.set(xlabel=f"log1p({column})", yticks=[])
    axes[0].legend(fontsize=8)
    report.figure(fig, "top_features_normal_vs_attack.png", "The four most separating features, normal vs attack (log1p scale)")

    report.heading("Missing values and placeholders")
    missing = frame.drop(columns="partition").isna().sum()
    service_dash = int((frame["service"] == "-").sum())
    report.text(
        f"Empty cells: {int(missing.sum())} in total"
        + (f" ({', '.join(f'{c}: {n}' for c, n in missing[missing > 0].items())})" if missing.sum() else "")
        + f". The placeholder `-` in `service` (no application protocol identified) fills {service_dash:,} rows "
        f"({_pct(service_dash / len(frame))}); it is a category of its own, not a missing value to impute.",
    )
    features = frame.drop(columns=["id", "label", "attack_cat", "partition"])
    duplicated = features.duplicated()
    groups = frame[features.duplicated(keep=False)].groupby(list(features.columns), dropna=False)
    report.table(
        [
            ["rows with an empty cell", int(frame.drop(columns="partition").isna().any(axis=1).sum())],
            ["rows with service = '-'", service_dash],
            ["proto / service / state values", f"{frame['proto'].nunique()} / {frame['service'].nunique()} / {frame['state'].nunique()}"],
            ["rows duplicating an earlier row (all columns but id, label, attack_cat)", int(duplicated.sum())],
            ["duplicate groups with conflicting label", int((groups["label"].nunique() > 1).sum())],
        ],
        ["check", "value"],
    )
    report.text(
        "Exact duplicates matter more than missing values here: a random split puts copies of test rows into "
        "training. The traffic workload drops them before splitting (see workloads/traffic_data.py)."
    )
    return report.write()


# ---------------------------------------------------------------------------------------------
# sentiment: amazon_polarity subset (+ the UCI Amazon sentences)
# ---------------------------------------------------------------------------------------------


def _tokeniser() -> tuple[Callable[[str], list[str]], str]:
    """The sentiment workload's baseline cleaning when present, else a minimal regexp equivalent."""
    try:
        from bench.data.text_cleaning import baseline_tokens, clean_for_model

        return (lambda text: baseline_tokens(clean_for_model(text))), (
            "the sentiment workload's baseline cleaning (bench/data/text_cleaning.py: HTML/URL removal, "
            "lower-case, regexp tokens, stop words without negations, n't -> not, Porter stems)"
        )
    except ImportError:  # pragma: no cover - only before that module exists
        import re

        from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

        keep = {"no", "not", "nor", "never", "none", "nothing", "cannot", "without"}
        stop = frozenset(ENGLISH_STOP_WORDS) - keep
        word = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
        return (lambda text: [w for w in word.findall(text.lower()) if w not in stop]), (
            "lower-case regexp tokens, English stop words without negations"
        )


def eda_sentiment(out_dir: Path) -> Path:
    frame = load_checked("amazon_polarity")
    names = {0: "negative", 1: "positive"}
    frame["class"] = frame["label"].map(names)
    report = EdaReport("EDA: Amazon review sentiment", out_dir)
    report.text(
        _source_line("amazon_polarity"),
        f"{len(frame):,} reviews; `text` is `title: content`. Label 0 = negative (1-2 stars), 1 = positive (4-5 stars).",
        _reproduce("sentiment"),
    )

    report.heading("Class balance")
    balance = pd.crosstab(frame["split"], frame["class"], margins=True, margins_name="all")
    report.table([[s, *r.tolist(), _pct(r["positive"] / r["all"])] for s, r in balance.iterrows()],
                 ["split", *balance.columns, "positive share"])
    fig, ax = plt.subplots(figsize=(5, 3))
    splits = [s for s in balance.index if s != "all"]
    x = np.arange(len(splits))
    for offset, (cls, colour) in zip((-0.2, 0.2), (("negative", HEALTHY), ("positive", FAILING)), strict=True):
        ax.bar(x + offset, balance.loc[splits, cls], width=0.4, color=colour, label=cls)
    ax.set_xticks(x, splits)
    ax.set(ylabel="reviews")
    ax.legend(fontsize=8)
    report.figure(fig, "class_balance.png", "Reviews per class and split")

    report.heading("Review length")
    frame["words"] = frame["text"].str.split().str.len()
    frame["chars"] = frame["text"].str.len()
    quantiles = frame.groupby("class")[["words", "chars"]].quantile([0.05, 0.5, 0.95]).unstack()
    report.table(
        [[c, *[int(v) for v in quantiles.loc[c].tolist()]] for c in quantiles.index],
        ["class", "words p5", "words p50", "words p95", "chars p5", "chars p50", "chars p95"],
    )
    fig, ax = plt.subplots(figsize=(6, 3.2))
    bins = np.histogram_bin_edges(frame["words"], bins=50)
    for cls, colour in (("negative", HEALTHY), ("positive", FAILING)):
        ax.hist(frame.loc[frame["class"] == cls, "words"], bins=bins, alpha=0.6, color=colour, label=cls)
    ax.set(xlabel="words per review (whitespace-separated)", ylabel="reviews")
    ax.legend(fontsize=8)
    report.figure(fig, "review_length.png", "Review length in words, by class")
    over = int((frame["words"] > 200).sum())
    report.text(
        f"The longest review has {int(frame['words'].max())} words; "
        f"{over} reviews ({_pct(over / len(frame))}) exceed 200 words. Negative reviews are "
        f"{'longer' if quantiles.loc['negative', ('words', 0.5)] > quantiles.loc['positive', ('words', 0.5)] else 'not longer'} "
        "at the median."
    )

    report.heading("Most frequent terms per class, after cleaning")
    tokens, how = _tokeniser()
    counts = {cls: Counter() for cls in names.values()}
    for text, cls in zip(frame["text"], frame["class"], strict=True):
        counts[cls].update(tokens(text))
    total = {cls: sum(c.values()) for cls, c in counts.items()}
    report.text(f"Cleaning: {how}. Terms are counted once per occurrence; stems read as words (`movi` = movie, `stori` = story).")
    top_n = 20
    top = {cls: c.most_common(top_n) for cls, c in counts.items()}
    report.table(
        [[i + 1, *[f"{top[cls][i][0]} ({top[cls][i][1]})" for cls in names.values()]] for i in range(top_n)],
        ["rank", "negative", "positive"],
    )
    vocab = {t for c in counts.values() for t, n in c.items() if n >= 1}
    log_odds = []
    for term in vocab:
        neg, pos = counts["negative"][term], counts["positive"][term]
        if neg + pos < 30:
            continue
        ratio = np.log((pos + 1) / (total["positive"] + len(vocab))) - np.log((neg + 1) / (total["negative"] + len(vocab)))
        log_odds.append((term, ratio, neg, pos))
    log_odds.sort(key=lambda r: r[1])
    report.text(
        "The most frequent terms are largely shared (product nouns, `not`). The most class-specific terms, by "
        "smoothed log frequency ratio among terms seen at least 30 times:"
    )
    k = 15
    report.table(
        [[f"{a[0]} ({a[2]}/{a[3]})", f"{b[0]} ({b[2]}/{b[3]})"] for a, b in zip(log_odds[:k], log_odds[::-1][:k], strict=True)],
        ["negative (neg/pos count)", "positive (neg/pos count)"],
    )
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
    for ax, (cls, colour) in zip(axes, (("negative", HEALTHY), ("positive", FAILING)), strict=True):
        terms, freq = zip(*top[cls], strict=True)
        ax.barh(list(terms)[::-1], [1000 * f / total[cls] for f in freq][::-1], color=colour)
        ax.set(title=f"{cls} reviews", xlabel="occurrences per 1,000 terms")
    report.figure(fig, "top_terms_per_class.png", f"The {top_n} most frequent cleaned terms in each class")

    cells = dataset("amazon_cells").files[0]
    if cells.path.is_file():
        sentences = load_checked("amazon_cells")
        words = sentences["sentence"].str.split().str.len()
        report.heading("Out-of-domain set: UCI Amazon labelled sentences")
        report.text(
            f"{len(sentences):,} single sentences ({int((sentences['label'] == 1).sum())} positive, "
            f"{int((sentences['label'] == 0).sum())} negative), median {int(words.median())} words against "
            f"{int(frame['words'].median())} for the reviews above: the sentiment workload reports its test "
            "score on these beside the in-domain test, a shift in length and style."
        )
    return report.write()


EDAS: dict[str, Callable[[Path], Path]] = {
    "maintenance": eda_maintenance,
    "traffic": eda_traffic,
    "sentiment": eda_sentiment,
}


def run_eda(name: str, out_dir: Path) -> Path:
    """Write the report of `name` into out_dir (created); returns the README path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    return EDAS[name](out_dir)
