"""What a study runs, checked once before any training.

The article's runs (a-d) always use the article's parameters, so the default study reproduces it.
The pruning options (``sparsity``, ``schedule``, ``begin_step``... ``--sparsity``... on the command
line) define one extra run, ``custom``, shown beside the others; its defaults are run (b)'s.
``epochs`` and ``seed`` apply to every run.
"""

from __future__ import annotations

import dataclasses

from prunekit.lab.choices import DATASETS, POOLINGS, SCHEDULES
from prunekit.lab.data import DATASET_SHAPES
from prunekit.lab.models import kernel_shapes

#: Run ids in the order they run, with their one-letter aliases.
RUN_IDS = ("baseline", "whole", "layer", "weights", "recommended", "structured", "custom")
RUN_ALIASES = {"a": "baseline", "b": "whole", "c": "layer", "d": "weights",
               "r": "recommended", "s": "structured", "x": "custom"}
DEFAULT_RUNS = ("baseline", "whole", "layer", "weights", "recommended", "structured")
#: Runs that start from the trained baseline's weights (they need run ``baseline``).
NEEDS_BASELINE = ("weights", "recommended", "structured")
PRUNE_LAYERS = ("all", "hidden")
FULL_EPOCHS = 300
QUICK_EPOCHS = 3


class StudyConfigError(ValueError):
    """An invalid study setting; the message names the command-line flag."""


@dataclasses.dataclass(frozen=True)
class CustomPruning:
    """Parameters of the ``custom`` run (defaults: run (b), the article's ``pruning_params``).

    Attributes:
        sparsity: Target (final) sparsity, in [0, 1).
        schedule: ``"constant"`` (ConstantSparsity) or ``"polynomial"`` (PolynomialDecay).
        initial_sparsity: PolynomialDecay's initial sparsity.
        begin_step: First step at which the mask is updated.
        end_step: Last step (``-1``: never stops; only for ``constant``).
        frequency: Steps between mask updates.
        block_size: ``(height, width)`` of the pruned blocks.
        pooling: ``"AVG"`` or ``"MAX"``, how a block's magnitudes are pooled.
        prune_layers: ``"all"`` Dense layers, or ``"hidden"`` (output layer left dense).
        from_baseline: Start from the trained baseline's weights instead of from scratch.
    """

    sparsity: float = 0.5
    schedule: str = "constant"
    initial_sparsity: float = 0.0
    begin_step: int = 0
    end_step: int = -1
    frequency: int = 100
    block_size: tuple[int, int] = (1, 1)
    pooling: str = "AVG"
    prune_layers: str = "all"
    from_baseline: bool = False


@dataclasses.dataclass(frozen=True)
class StudyConfig:
    """Everything a study needs; build it with :func:`make_config`, which validates.

    Attributes:
        dataset: ``"friedman"`` or ``"digits"``.
        runs: Run ids to execute, in execution order.
        epochs: Maximum epochs of every run (early stopping may end a run sooner).
        seed: Seed given to ``keras.utils.set_random_seed`` before each run.
        quick: Whether the short test mode was asked for (recorded in the results).
        custom: Parameters of the ``custom`` run.
        batch_size: Keras batch size (the article used the default, 32).
        validation_split: Fraction of the training rows held out for ``val_loss``.
    """

    dataset: str = "friedman"
    runs: tuple[str, ...] = DEFAULT_RUNS
    epochs: int = FULL_EPOCHS
    seed: int = 0
    quick: bool = False
    custom: CustomPruning = dataclasses.field(default_factory=CustomPruning)
    batch_size: int = 32
    validation_split: float = 0.2


def parse_runs(text: str) -> tuple[str, ...]:
    """Parse ``"a,b,recommended"`` into run ids in execution order.

    Runs that start from the baseline's weights pull in ``baseline``.

    Args:
        text: Comma-separated run ids or their letters (a, b, c, d, r, s, x).

    Returns:
        Run ids, ordered as :data:`RUN_IDS`.

    Raises:
        StudyConfigError: If a name is unknown or the list is empty.

    Example:
        >>> parse_runs("d,b")
        ('baseline', 'whole', 'weights')
    """
    names = [n.strip() for n in text.split(",") if n.strip()]
    chosen = set()
    for name in names:
        run = RUN_ALIASES.get(name.lower(), name.lower())
        if run not in RUN_IDS:
            raise StudyConfigError(
                f"--runs: unknown run {name!r}; expected some of {', '.join(RUN_IDS)} "
                f"(or a, b, c, d, r, s, x). Received: --runs={text!r}"
            )
        chosen.add(run)
    if not chosen:
        raise StudyConfigError(f"--runs must name at least one run. Received: --runs={text!r}")
    if chosen & set(NEEDS_BASELINE):
        chosen.add("baseline")
    return tuple(r for r in RUN_IDS if r in chosen)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise StudyConfigError(message)


def validate_custom(custom: CustomPruning, dataset: str) -> None:
    """Reject invalid ``custom`` run parameters, naming the flag at fault.

    Args:
        custom: The parameters.
        dataset: Dataset name (fixes the kernel shapes the block must fit).

    Raises:
        StudyConfigError: On the first invalid parameter.

    Example:
        >>> validate_custom(CustomPruning(sparsity=0.8), "friedman")
        >>> try:
        ...     validate_custom(CustomPruning(sparsity=1.0), "friedman")
        ... except StudyConfigError as error:
        ...     print(error)
        --sparsity must be >= 0 and < 1. Received: --sparsity=1.0
    """
    c = custom
    _check(0 <= c.sparsity < 1,
           f"--sparsity must be >= 0 and < 1. Received: --sparsity={c.sparsity}")
    _check(c.schedule in SCHEDULES,
           f"--schedule must be one of {', '.join(SCHEDULES)}. Received: --schedule={c.schedule!r}")
    _check(c.pooling in POOLINGS,
           f"--pooling must be one of {', '.join(POOLINGS)}. Received: --pooling={c.pooling!r}")
    _check(c.prune_layers in PRUNE_LAYERS, f"--prune-layers must be one of "
           f"{', '.join(PRUNE_LAYERS)}. Received: --prune-layers={c.prune_layers!r}")
    _check(0 <= c.initial_sparsity < 1, "--initial-sparsity must be >= 0 and < 1. "
           f"Received: --initial-sparsity={c.initial_sparsity}")
    _check(c.begin_step >= 0, f"--begin-step must be >= 0. Received: --begin-step={c.begin_step}")
    _check(c.frequency > 0, f"--frequency must be > 0. Received: --frequency={c.frequency}")
    if c.schedule == "polynomial":
        _check(c.end_step > c.begin_step, f"--end-step ({c.end_step}) must be > --begin-step "
               f"({c.begin_step}) for --schedule polynomial")
    else:
        _check(c.end_step == -1 or c.end_step >= c.begin_step,
               f"--end-step ({c.end_step}) must be >= --begin-step ({c.begin_step}), "
               "or -1 (never stop)")
    shapes = kernel_shapes(*DATASET_SHAPES[dataset])
    targets = ("hidden", "output") if c.prune_layers == "all" else ("hidden",)
    for target in targets:
        rows, cols = shapes[target]
        height, width = c.block_size
        hint = " (add --prune-layers hidden to leave it dense)" if target == "output" else ""
        _check(height <= rows and width <= cols,
               f"--block-size {height}x{width} is larger than the {target} Dense kernel "
               f"({rows}x{cols}) of the {dataset} model{hint}")


def make_config(**settings) -> StudyConfig:
    """Build and validate a :class:`StudyConfig`.

    Keyword arguments are :class:`StudyConfig` fields; ``custom`` may be a dict of
    :class:`CustomPruning` fields. ``runs`` may be a comma-separated string.

    Returns:
        The validated configuration.

    Raises:
        StudyConfigError: If a setting is invalid (the message names its flag).

    Example:
        >>> make_config(runs="a,b", epochs=5).runs
        ('baseline', 'whole')
    """
    custom = settings.pop("custom", None) or CustomPruning()
    if isinstance(custom, dict):
        custom = CustomPruning(**custom)
    runs = settings.pop("runs", DEFAULT_RUNS)
    runs = parse_runs(runs if isinstance(runs, str) else ",".join(runs))
    config = StudyConfig(custom=custom, runs=runs, **settings)
    _check(config.dataset in DATASETS, f"--dataset must be one of {', '.join(DATASETS)}. "
           f"Received: --dataset={config.dataset!r}")
    _check(config.epochs > 0, f"--epochs must be > 0. Received: --epochs={config.epochs}")
    _check(config.seed >= 0, f"--seed must be >= 0. Received: --seed={config.seed}")
    validate_custom(custom, config.dataset)
    return config
