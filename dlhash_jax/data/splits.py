"""Drawing a protocol's splits from a source, and the rules every set of splits obeys.

``make_splits`` draws query, train, validation and database indices for a seed (stratified per
class for single-label data, uniform otherwise); ``check_splits`` enforces the invariants of
docs/design.md ("Data") on drawn splits and on index files read back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from dlhash_jax.data import sources


def _is_single_label(labels: np.ndarray) -> bool:
    return bool((labels.sum(axis=1) == 1).all())


def _describe(draws: Sequence[tuple[str, int | None]]) -> str:
    return " + ".join(f"{split} {'all the rest' if n is None else n}" for split, n in draws)


def _draw(
    pool: np.ndarray,
    draws: Sequence[tuple[str, int | None]],
    *,
    labels: np.ndarray,
    rng: np.random.Generator,
    stratified: bool,
    protocol: str,
    pool_name: str,
) -> dict[str, np.ndarray]:
    """Draws disjoint subsets of ``pool`` in order; a ``None`` size (last only) takes the rest."""
    needed = sum(n for _, n in draws if n is not None)
    if needed > pool.size:
        raise ValueError(
            f"protocol {protocol!r} needs {_describe(draws)} = {needed} items from the "
            f"{pool_name} but it has {pool.size}; pass smaller sizes as overrides."
        )
    if not stratified:
        order = rng.permutation(pool)
        result, start = {}, 0
        for split, n in draws:
            stop = order.size if n is None else start + n
            result[split] = np.sort(order[start:stop])
            start = stop
        return result

    num_classes = labels.shape[1]
    pool_classes = labels[pool].argmax(axis=1)
    members = [rng.permutation(pool[pool_classes == c]) for c in range(num_classes)]
    # Equal shares per class; the remainder goes one each to the lowest class ids.
    quotas = {
        split: None if n is None else n // num_classes + (np.arange(num_classes) < n % num_classes)
        for split, n in draws
    }
    need = np.zeros(num_classes, np.int64)
    for quota in quotas.values():
        if quota is not None:
            need += quota
    for c in range(num_classes):
        if need[c] > members[c].size:
            per_class = " + ".join(
                f"{split} {'rest' if q is None else int(q[c])}" for split, q in quotas.items()
            )
            raise ValueError(
                f"protocol {protocol!r} draws per class ({_describe(draws)} over {num_classes} "
                f"classes): class {c} needs {per_class} = {need[c]} items but the {pool_name} "
                f"has {members[c].size} of that class; pass smaller sizes as overrides."
            )
    result, starts = {}, np.zeros(num_classes, np.int64)
    for split, quota in quotas.items():
        parts = []
        for c in range(num_classes):
            stop = members[c].size if quota is None else starts[c] + quota[c]
            parts.append(members[c][starts[c] : stop])
            starts[c] = stop
        result[split] = np.sort(np.concatenate(parts)).astype(np.int64)
    return result


def check_splits(
    protocol: str,
    splits: Mapping[str, np.ndarray],
    num_items: int,
    *,
    train_in_database: bool = True,
) -> None:
    """Refuses splits that break a protocol's rules (docs/design.md, "Data").

    Args:
      protocol: the protocol's name, for the messages.
      splits: ``{"query", "train", "validation", "database"}`` -> int indices into the source.
      num_items: the source's number of items ``N``.
      train_in_database: whether train must lie inside the database (else outside it).

    Raises:
      ValueError: naming the rule broken: indices not 1-D integers, outside ``[0, N)`` or
        repeated; an empty query, train or database; query ∩ database or train ∩ validation
        not empty; validation outside the database or among the queries; train on the wrong
        side of the database.
    """
    for split, indices in splits.items():
        if indices.ndim != 1 or not np.issubdtype(indices.dtype, np.integer):
            raise ValueError(
                f"protocol {protocol!r}: {split} indices must be a 1-D integer array, got dtype "
                f"{indices.dtype} and shape {indices.shape}."
            )
        if indices.size and (indices.min() < 0 or indices.max() >= num_items):
            raise ValueError(
                f"protocol {protocol!r}: {split} indices span [{indices.min()}, {indices.max()}], "
                f"outside [0, {num_items}) for a source of {num_items} items."
            )
        if np.unique(indices).size != indices.size:
            raise ValueError(f"protocol {protocol!r}: {split} indices repeat an item.")
    for split, minimum in (("query", 1), ("train", 1), ("database", 1)):
        if splits[split].size < minimum:
            raise ValueError(f"protocol {protocol!r}: the {split} split is empty.")
    overlaps = [
        ("query", "database", np.intersect1d(splits["query"], splits["database"]).size),
        ("train", "validation", np.intersect1d(splits["train"], splits["validation"]).size),
    ]
    for first, second, count in overlaps:
        if count:
            raise ValueError(
                f"protocol {protocol!r}: {first} and {second} must be disjoint, they share "
                f"{count} items."
            )
    for split in ("train", "validation") if train_in_database else ("validation",):
        outside = np.setdiff1d(splits[split], splits["database"]).size
        if outside:
            raise ValueError(
                f"protocol {protocol!r}: {split} must lie inside the database; {outside} of its "
                f"{splits[split].size} items do not."
            )
    if not train_in_database:
        inside = np.intersect1d(splits["train"], splits["database"]).size
        if inside:
            raise ValueError(
                f"protocol {protocol!r}: train must lie outside the database; {inside} of its "
                f"{splits['train'].size} items are in it."
            )
    if np.intersect1d(splits["query"], splits["validation"]).size:
        raise ValueError(f"protocol {protocol!r}: validation must never touch the queries.")


def make_splits(
    protocol: str,
    source: sources.Source,
    sizes: Mapping[str, int | None],
    seed: int,
    *,
    query_group: str | None = None,
    train_in_database: bool = True,
) -> dict[str, np.ndarray]:
    """The sorted int64 indices of the query, train, validation and database splits.

    The source's fixed splits are kept; the others are drawn (stratified per class for
    single-label data) with a generator seeded by ``seed``: the queries from the source group
    ``query_group`` (``None``: every item), then validation and train from the database; with
    ``train_in_database`` false the training items then leave the database.

    Raises:
      ValueError: if the sizes cannot be drawn, or the splits break :func:`check_splits`.
    """
    rng = np.random.default_rng(seed)
    fixed = dict(source.fixed_splits)
    stratified = _is_single_label(source.labels)
    all_items = np.arange(len(source), dtype=np.int64)
    none = all_items[:0]
    draw_options = {"labels": source.labels, "rng": rng, "stratified": stratified}
    splits = {}
    if "query" in fixed:
        splits["query"] = fixed["query"]
    else:
        query_draw = [("query", sizes["query_size"])]
        if query_group is None:
            query_pool, pool_name = all_items, "source"
        else:
            query_pool = np.asarray(source.groups[query_group], np.int64)
            pool_name = f"{query_group} split"
        splits.update(
            _draw(query_pool, query_draw, protocol=protocol, pool_name=pool_name, **draw_options)
        )
    splits["database"] = fixed.get("database", np.setdiff1d(all_items, splits["query"]))
    fixed_members = np.concatenate([fixed.get("train", none), fixed.get("validation", none)])
    pool = np.setdiff1d(splits["database"], fixed_members)
    # Validation first, so that a train size of None takes everything else.
    draws = [
        (split, sizes[f"{split}_size"]) for split in ("validation", "train") if split not in fixed
    ]
    splits.update(_draw(pool, draws, protocol=protocol, pool_name="database", **draw_options))
    splits.update({split: fixed[split] for split in ("train", "validation") if split in fixed})
    if not train_in_database:
        splits["database"] = np.setdiff1d(splits["database"], splits["train"])
    splits = {split: np.sort(indices).astype(np.int64) for split, indices in splits.items()}
    check_splits(protocol, splits, len(source), train_in_database=train_in_database)
    return splits
