"""Tests of scripts/check_deps.py on small fixture workspaces: the allowed staircase passes,
and each kind of violation (upward, sideways, test-util shipped, unused, dev-only use) fails."""

import pathlib
import sys
import tempfile
import unittest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import check_deps  # noqa: E402


class Fixture:
    """A fake workspace on disk plus the `cargo metadata` shape describing it."""

    def __init__(self, root: pathlib.Path):
        self.root = root
        self.packages = []

    def crate(self, name, deps=(), src="", tests=""):
        """`deps`: (name, kind) pairs, kind None for normal."""
        base = self.root / name
        (base / "src").mkdir(parents=True)
        (base / "src" / "lib.rs").write_text(src)
        if tests:
            (base / "tests").mkdir()
            (base / "tests" / "t.rs").write_text(tests)
        self.packages.append(
            {
                "id": f"path+file://{base}#{name}@0.1.0",
                "name": name,
                "manifest_path": str(base / "Cargo.toml"),
                "dependencies": [{"name": d, "kind": k} for d, k in deps],
            }
        )

    def metadata(self):
        return {
            "packages": self.packages,
            "workspace_members": [p["id"] for p in self.packages],
        }


class CheckDepsTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.ws = Fixture(pathlib.Path(self.tmp.name))
        self.ws.crate("amas-types")
        self.ws.crate("amas-test-util", src="pub fn mock() {}")

    def tearDown(self):
        self.tmp.cleanup()

    def test_the_staircase_passes(self):
        self.ws.crate(
            "amas-config",
            deps=[("amas-types", None), ("amas-test-util", "dev")],
            src="use amas_types::X;",
            tests="use amas_test_util::mock;",
        )
        self.ws.crate("amas-telemetry", deps=[("amas-config", None)], src="amas_config::load();")
        self.assertEqual(check_deps.check(self.ws.metadata()), [])

    def test_an_upward_edge_fails(self):
        self.ws.crate("amas-store")
        self.ws.crate("amas-config", deps=[("amas-store", None)], src="use amas_store::X;")
        problems = check_deps.check(self.ws.metadata())
        self.assertEqual(len(problems), 1, problems)
        self.assertIn("amas-config -> amas-store (normal): higher tier (upward)", problems[0])

    def test_a_sideways_edge_fails(self):
        self.ws.crate("amas-dataprotect")
        self.ws.crate(
            "amas-providers", deps=[("amas-dataprotect", None)], src="amas_dataprotect::scrub();"
        )
        problems = check_deps.check(self.ws.metadata())
        self.assertEqual(len(problems), 1, problems)
        self.assertIn("same tier (sideways)", problems[0])

    def test_an_upward_dev_dependency_fails(self):
        self.ws.crate("amas-api")
        self.ws.crate(
            "amas-runtime", deps=[("amas-api", "dev")], tests="use amas_api::router;"
        )
        problems = check_deps.check(self.ws.metadata())
        self.assertEqual(len(problems), 1, problems)
        self.assertIn("amas-runtime -> amas-api (dev): higher tier", problems[0])

    def test_test_util_as_a_normal_dependency_fails(self):
        self.ws.crate(
            "amas-cli", deps=[("amas-test-util", None)], src="amas_test_util::mock();"
        )
        problems = check_deps.check(self.ws.metadata())
        self.assertEqual(len(problems), 1, problems)
        self.assertIn("only a dev-dependency", problems[0])

    def test_an_unused_dependency_fails(self):
        # `amas_typesx` and `my_amas_types` must not count as a use of `amas_types`.
        self.ws.crate(
            "amas-config", deps=[("amas-types", None)], src="let amas_typesx = my_amas_types;"
        )
        problems = check_deps.check(self.ws.metadata())
        self.assertEqual(len(problems), 1, problems)
        self.assertIn("amas-config -> amas-types (normal): declared but unused", problems[0])

    def test_a_normal_dependency_used_only_by_tests_fails(self):
        self.ws.crate("amas-providers")
        self.ws.crate(
            "amas-api", deps=[("amas-providers", None)], tests="use amas_providers::Mock;"
        )
        problems = check_deps.check(self.ws.metadata())
        self.assertEqual(len(problems), 1, problems)
        self.assertIn("move it to [dev-dependencies]", problems[0])

    def test_an_unknown_workspace_crate_fails(self):
        self.ws.crate("amas-newthing")
        problems = check_deps.check(self.ws.metadata())
        self.assertEqual(len(problems), 1, problems)
        self.assertIn("amas-newthing: not in the staircase", problems[0])

    def test_external_dependencies_are_ignored(self):
        self.ws.crate("amas-config", deps=[("serde", None)])
        self.assertEqual(check_deps.check(self.ws.metadata()), [])


if __name__ == "__main__":
    unittest.main()
