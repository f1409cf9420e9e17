"""A Hamming index whose stored codes are split over the devices of a mesh, searched in place.

:class:`ShardedHammingIndex` has :class:`~dlhash_jax.retrieval.HammingIndex`'s API and exactly
its results: the same distances and ids in the same (distance, insertion position) order. The
packed codes ``uint32 [N, W]`` are padded to a multiple of the number of devices and laid out
along a 1-D :class:`jax.sharding.Mesh` (axis ``"shards"``): every local device, or every device
of every process after ``jax.distributed.initialize``, holds ``N / D`` consecutive codes. A
search runs one ``shard_map`` program: each device scans its own codes in blocks and keeps its
``k`` best by (distance, position), so only ``[Q, k]`` per device crosses the interconnect; the
host merges the ``D`` lists of each query exactly (a stable sort of distance, then position).
A radius search first counts, on the devices, the codes within the radius of each query, then
runs the top-k program with ``k`` the largest count and keeps the rows within the radius.

Multi-process use is SPMD: every process builds the index with the same ``add`` calls and asks
the same queries; ``jax.make_array_from_callback`` places on each process only the shards of
its own devices, and the per-device candidates are gathered to every process
(``multihost_utils.process_allgather``) before the merge. The memory and time model for 10⁹–10¹⁰
codes is in docs/sharded_search.md.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.experimental import multihost_utils
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec

from dlhash_jax import hamming
from dlhash_jax._checks import check_int
from dlhash_jax._checks import is_int
from dlhash_jax.codes import packed_hamming_distance
from dlhash_jax.index_store import CodeStore
from dlhash_jax.index_store import check_queries

AXIS = "shards"
# Stored codes per scan step of a device: distance * block + position stays inside int32 for
# codes of up to 2**15 bits.
BLOCK = 1 << 16
QUERY_CHUNK = 256


def default_mesh() -> Mesh:
    """A 1-D mesh over every device of every process, axis ``"shards"``."""
    return Mesh(np.array(jax.devices()), (AXIS,))


def _check_mesh(mesh) -> Mesh:
    if not isinstance(mesh, Mesh) or mesh.axis_names != (AXIS,):
        raise ValueError(
            f"mesh must be a 1-D jax.sharding.Mesh with axis name {AXIS!r} (e.g. "
            f"Mesh(np.array(jax.devices()), ({AXIS!r},))), got {mesh!r}."
        )
    return mesh


@functools.partial(jax.jit, static_argnames=("mesh", "k", "num_bits", "num_db", "block"))
def _shard_topk(queries, database, *, mesh, k, num_bits, num_db, block):
    """Per device, the ``k`` best of its shard by (distance, global position): ``[Q, D * k]``."""
    filler = num_bits + 1

    def local(queries, shard):
        per_shard = shard.shape[0]
        start = lax.axis_index(AXIS) * per_shard
        steps = per_shard // block
        shard_blocks = shard.reshape(steps, block, shard.shape[1])
        positions = jnp.arange(block, dtype=jnp.int32)
        block_k = min(k, block)

        def step(carry, inputs):
            best_dist, best_idx = carry
            j, codes = inputs
            index = start + j * block + positions
            dist = packed_hamming_distance(queries, codes)
            # Padding rows sort after every stored code.
            dist = jnp.where(index < num_db, dist, filler)
            neg_key, _ = lax.top_k(-(dist * block + positions), block_k)
            key = -neg_key
            merged_dist = jnp.concatenate([best_dist, key // block], axis=1)
            merged_idx = jnp.concatenate([best_idx, start + j * block + key % block], axis=1)
            merged_dist, merged_idx = lax.sort((merged_dist, merged_idx), dimension=1, num_keys=2)
            return (merged_dist[:, :k], merged_idx[:, :k]), None

        rows = queries.shape[0]
        init = (jnp.full((rows, k), filler, jnp.int32), jnp.full((rows, k), num_db, jnp.int32))
        # The carry becomes device-varying (it holds this shard's codes) after one step.
        init = lax.pcast(init, (AXIS,), to="varying")
        (dist, idx), _ = lax.scan(step, init, (jnp.arange(steps, dtype=jnp.int32), shard_blocks))
        return dist, idx

    spec = PartitionSpec(None, AXIS)
    return jax.shard_map(
        local,
        mesh=mesh,
        in_specs=(PartitionSpec(), PartitionSpec(AXIS, None)),
        out_specs=(spec, spec),
    )(queries, database)


@functools.partial(jax.jit, static_argnames=("mesh", "radius", "num_db", "block"))
def _shard_counts(queries, database, *, mesh, radius, num_db, block):
    """Per device, how many of its codes lie within ``radius`` of each query: ``[Q, D]``."""

    def local(queries, shard):
        per_shard = shard.shape[0]
        start = lax.axis_index(AXIS) * per_shard
        steps = per_shard // block
        shard_blocks = shard.reshape(steps, block, shard.shape[1])
        positions = jnp.arange(block, dtype=jnp.int32)

        def step(count, inputs):
            j, codes = inputs
            index = start + j * block + positions
            inside = (packed_hamming_distance(queries, codes) <= radius) & (index < num_db)
            return count + jnp.sum(inside, axis=1, dtype=jnp.int32), None

        zeros = lax.pcast(jnp.zeros(queries.shape[0], jnp.int32), (AXIS,), to="varying")
        count, _ = lax.scan(step, zeros, (jnp.arange(steps, dtype=jnp.int32), shard_blocks))
        return count[:, None]

    return jax.shard_map(
        local,
        mesh=mesh,
        in_specs=(PartitionSpec(), PartitionSpec(AXIS, None)),
        out_specs=PartitionSpec(None, AXIS),
    )(queries, database)


def _to_host(array: jax.Array) -> np.ndarray:
    if jax.process_count() == 1:
        return np.asarray(array)
    return np.asarray(multihost_utils.process_allgather(array, tiled=True))


class ShardedHammingIndex:
    """:class:`~dlhash_jax.retrieval.HammingIndex` with its codes split over a mesh's devices.

    Same ``add`` / ``search`` / ``range_search`` / ``save`` / ``load`` and the same results
    (distances and ids in (distance, insertion position) order). The host keeps the ids and
    labels (and a copy of the packed codes, from which the shards are placed) in a
    :class:`~dlhash_jax.index_store.CodeStore`, so the file is ``HammingIndex``'s; the devices
    hold the codes they search. Placement happens at the first search after an ``add``.

    Args:
      num_bits: code length ``L``.
      mesh: a 1-D mesh with axis ``"shards"``; default: every device of every process.

    Examples:
      >>> index = ShardedHammingIndex(3)
      >>> index.add(np.array([[1, 1, 1], [-1, 1, 1]]), ids=np.array([10, 20]))
      >>> dist, ids = index.search(np.array([[-1, 1, 1]]), 2)
      >>> dist.tolist(), ids.tolist()
      ([[0, 1]], [[20, 10]])
    """

    def __init__(self, num_bits: int, *, mesh: Mesh | None = None):
        self._host = CodeStore(num_bits)
        self._mesh = _check_mesh(default_mesh() if mesh is None else mesh)
        self._placed = None
        self._local = None

    @classmethod
    def from_index(cls, index: CodeStore, *, mesh: Mesh | None = None) -> ShardedHammingIndex:
        """The sharded form of a :class:`~dlhash_jax.retrieval.HammingIndex` or another code store.

        The result shares the store of ``index`` (a :class:`~dlhash_jax.index_store.CodeStore`:
        a ``HammingIndex`` or a ``MultiIndexHashing``): its codes, ids and labels.
        """
        if not isinstance(index, CodeStore):
            raise ValueError(
                "from_index needs a HammingIndex (or another CodeStore), got "
                f"{type(index).__name__}."
            )
        sharded = cls(index.num_bits, mesh=mesh)
        sharded._host = index
        return sharded

    @property
    def num_bits(self) -> int:
        """Code length ``L``."""
        return self._host.num_bits

    @property
    def mesh(self) -> Mesh:
        """The mesh the codes are split over."""
        return self._mesh

    @property
    def num_shards(self) -> int:
        """``D``, the devices holding a shard each."""
        return self._mesh.devices.size

    @property
    def packed_codes(self) -> np.ndarray:
        """``uint32 [N, ceil(L / 32)]`` stored codes (host copy), in insertion order."""
        return self._host.packed_codes

    @property
    def ids(self) -> np.ndarray:
        """``int64 [N]`` ids, in insertion order."""
        return self._host.ids

    @property
    def labels(self) -> np.ndarray | None:
        """``[N, C]`` labels in insertion order, or None."""
        return self._host.labels

    def __len__(self) -> int:
        return len(self._host)

    def codes(self) -> np.ndarray:
        """The stored codes unpacked, ``float32 [N, L]`` in {-1, +1}."""
        return self._host.codes()

    def add(self, codes, ids=None, labels=None) -> None:
        """Appends codes (and ids and labels), as :meth:`HammingIndex.add`."""
        self._host.add(codes, ids=ids, labels=labels)
        self._placed = self._local = None

    def _block(self) -> int:
        per_shard = -(-len(self) // self.num_shards)
        return min(BLOCK, max(per_shard, 1))

    def _database(self) -> jax.Array:
        if self._placed is None:
            block = self._block()
            per_shard = -(-len(self) // (self.num_shards * block)) * block
            padded = np.zeros((per_shard * self.num_shards, self.packed_codes.shape[1]), np.uint32)
            padded[: len(self)] = self.packed_codes
            sharding = NamedSharding(self._mesh, PartitionSpec(AXIS, None))
            self._placed = jax.make_array_from_callback(
                padded.shape, sharding, lambda rows: padded[rows]
            )
        return self._placed

    def _queries(self, query_codes) -> list[np.ndarray]:
        packed = check_queries(query_codes, self.num_bits, len(self))
        return [packed[start : start + QUERY_CHUNK] for start in range(0, len(packed), QUERY_CHUNK)]

    def _replicated(self, packed: np.ndarray) -> jax.Array:
        """Packed queries placed whole on every device of the mesh."""
        sharding = NamedSharding(self._mesh, PartitionSpec())
        return jax.make_array_from_callback(packed.shape, sharding, lambda rows: packed[rows])

    def _per_shard(self) -> int:
        return self._database().shape[0] // self.num_shards

    def _on_cpu(self) -> bool:
        return self._mesh.devices.flat[0].platform == "cpu"

    def _local_shards(self) -> list[tuple[int, np.ndarray]]:
        """``(first position, codes)`` of each of this process's shards, padding removed (a
        shard may be empty), in position order; the same count on every process."""
        if self._local is None:
            shards = []
            for shard in self._database().addressable_shards:
                start = shard.index[0].start or 0
                valid = min(max(len(self) - start, 0), shard.data.shape[0])
                shards.append((start, np.asarray(shard.data)[:valid]))
            self._local = sorted(shards, key=lambda pair: pair[0])
        return self._local

    def _host_candidates(self, packed: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        # A CPU device's shard is host memory: the host engine (hamming.topk's NumPy path, much
        # faster there than XLA's top_k) scans it where it lives.
        num_queries, width = packed.shape[0], min(k, self._per_shard())
        shards = self._local_shards()
        local_dist = np.full((num_queries, len(shards) * width),
                             self.num_bits + 1, np.int32)
        local_idx = np.full(local_dist.shape, self._database().shape[0], np.int64)
        for position, (start, codes) in enumerate(shards):
            if not codes.shape[0]:
                continue
            dist, idx = hamming.topk(packed, codes, self.num_bits, min(width, codes.shape[0]),
                                     backend="host")
            columns = slice(position * width, position * width + dist.shape[1])
            local_dist[:, columns], local_idx[:, columns] = dist, idx + start
        if jax.process_count() == 1:
            return local_dist, local_idx
        gathered = [
            np.asarray(multihost_utils.process_allgather(part)) for part in (local_dist, local_idx)
        ]
        return tuple(np.concatenate(list(part), axis=1) for part in gathered)

    def _candidates(self, packed: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Every device's ``min(k, N / D)`` best, merged: ``[Q, D * min(k, N / D)]`` sorted by
        (distance, position); padding rows (distance ``L + 1``) last."""
        if self._on_cpu():
            dist, idx = self._host_candidates(packed, k)
        else:
            dist, idx = _shard_topk(
                self._replicated(packed), self._database(), mesh=self._mesh,
                k=min(k, self._per_shard()), num_bits=self.num_bits, num_db=len(self),
                block=self._block(),
            )
            dist, idx = _to_host(dist), _to_host(idx)
        # Each device's list is sorted; one stable sort by (distance, position) merges them.
        key = dist.astype(np.int64) * (self._database().shape[0] + 1) + idx.astype(np.int64)
        order = np.argsort(key, axis=1, kind="stable")
        return np.take_along_axis(dist, order, axis=1), np.take_along_axis(idx, order, axis=1)

    def _counts(self, packed: np.ndarray, radius: int) -> np.ndarray:
        """``[Q, D']`` codes within ``radius`` of each query per shard (``D'`` the shards)."""
        if self._on_cpu():
            shards = self._local_shards()
            local = np.zeros((packed.shape[0], len(shards)), np.int32)
            for position, (_, codes) in enumerate(shards):
                if not codes.shape[0]:
                    continue
                found = hamming.within_radius(packed, codes, self.num_bits, radius, backend="host")
                local[:, position] = [len(idx) for _, idx in found]
            if jax.process_count() == 1:
                return local
            return np.concatenate(list(np.asarray(multihost_utils.process_allgather(local))),
                                  axis=1)
        return _to_host(
            _shard_counts(self._replicated(packed), self._database(), mesh=self._mesh,
                          radius=radius, num_db=len(self), block=self._block())
        )

    def search(self, query_codes, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest stored codes of each query, as :meth:`HammingIndex.search`.

        Args:
          query_codes: ``[Q, L]`` codes in {-1, +1}.
          k: ``1 <= k <= len(self)``.

        Returns:
          ``(distances int32 [Q, k], ids int64 [Q, k])`` sorted by (distance, insertion
          position) along each row.

        Raises:
          ValueError: for codes that are not ±1 or of another length, an empty index, or ``k``
            outside ``[1, len(self)]``.
        """
        chunks = self._queries(query_codes)
        if not is_int(k) or not 1 <= k <= len(self):
            raise ValueError(
                f"k must be an integer in [1, database size = {len(self)}], got {k!r}; a top-k "
                "search cannot return more items than the database holds."
            )
        found = [self._candidates(chunk, int(k)) for chunk in chunks]
        dist = np.concatenate([d[:, :k] for d, _ in found]).astype(np.int32)
        idx = np.concatenate([i[:, :k] for _, i in found])
        return dist, self.ids[idx]

    def range_search(self, query_codes, radius: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """All stored codes within Hamming distance ``radius`` of each query, as
        :meth:`HammingIndex.range_search`.

        Returns:
          ``Q`` pairs ``(distances int32 [n_q], ids int64 [n_q])`` sorted by (distance,
          insertion position).
        """
        chunks = self._queries(query_codes)
        radius = min(check_int(radius, "radius", minimum=0), self.num_bits)
        results = []
        for chunk in chunks:
            counts = self._counts(chunk, radius)
            # Every device holds at most `most` codes within the radius of any query, so its
            # `most` best hold all of them.
            most = int(counts.max())
            if most == 0:
                results.extend(
                    (np.zeros(0, np.int32), np.zeros(0, np.int64)) for _ in range(chunk.shape[0])
                )
                continue
            dist, idx = self._candidates(chunk, most)
            for row_dist, row_idx in zip(dist, idx):
                inside = row_dist <= radius
                results.append((row_dist[inside].astype(np.int32), self.ids[row_idx[inside]]))
        return results

    def save(self, path) -> None:
        """Writes the codes, ids and labels as :meth:`HammingIndex.save` (the same file)."""
        self._host.save(path)

    @classmethod
    def load(cls, path, *, mesh: Mesh | None = None) -> ShardedHammingIndex:
        """Reads a file of :meth:`save` or :meth:`HammingIndex.save` and shards it over ``mesh``."""
        return cls.from_index(CodeStore.load(path), mesh=mesh)

