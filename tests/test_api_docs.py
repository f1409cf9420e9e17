"""docs/api.md is the output of docs/make_api.py, so the API reference cannot fall behind the code.

When this fails, regenerate it: ``.venv/bin/python docs/make_api.py``.
"""

import importlib.util
import pathlib

import pytest

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs"


@pytest.fixture(scope="module")
def make_api():
    spec = importlib.util.spec_from_file_location("make_api", DOCS / "make_api.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def rendered(make_api):
    return make_api.render()


def test_api_md_is_up_to_date(rendered):
    current = (DOCS / "api.md").read_text(encoding="utf-8")
    assert current == rendered, (
        "docs/api.md is out of date with the docstrings: run `.venv/bin/python docs/make_api.py`."
    )


def test_every_module_and_public_name_is_documented(make_api, rendered):
    for name in make_api.module_names():
        assert f"## `dlhash_jax.{name}`" in rendered
        module = importlib.import_module(f"dlhash_jax.{name}")
        for obj_name, _ in make_api.public_objects(module):
            assert f"### `{name}.{obj_name}`" in rendered
    # Spot checks: a package re-export, a class with members, a recipe row.
    assert "### `losses.pairwise_likelihood_loss`" in rendered
    assert "### `retrieval.HammingIndex`" in rendered and "(classmethod)" in rendered
    assert "| `dpsh` |" in rendered


def test_signatures_come_from_the_source(make_api):
    def sample(x, y: int = 1, *, z: str = "a", _hidden=None) -> int:
        return 0

    node = make_api._node(sample)
    assert make_api._function_signature(node) == "sample(x, y: int = 1, *, z: str = 'a') -> int"
