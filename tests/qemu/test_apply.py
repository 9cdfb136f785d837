#!/usr/bin/env python3
"""qemu/apply on a synthetic tree that holds only the anchor lines.

Checks the properties the tool promises: every edit lands once, a second
run changes nothing, and a refusal (missing anchor, unsupported version)
leaves every file as it was.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
APPLY = os.path.join(ROOT, "qemu", "apply")

# One line per anchor, plus a little filler; not QEMU's text.
TREE = {
    "VERSION": "10.0.13\n",
    "plugins/meson.build": "x = 1\ncommon_ss.add(files('loader.c', 'api.c', "
                           "'core.c'))\n",
    "plugins/plugin.h": "#pragma once\nstruct qemu_plugin_ctx "
                        "*plugin_id_to_ctx_locked(qemu_plugin_id_t id);\n",
    "plugins/loader.c": "int a;\n\nvoid qemu_plugin_add_dyn_cb_arr(GArray "
                        "*arr)\n{\n    body();\n}\n\n/*\n * gen\n */\nstatic "
                        "uint64_t xorshift64star(uint64_t x)\n{\n    return "
                        "x;\n}\n\nvoid load(void)\n{\n        ctx->id = "
                        "xorshift64star(ctx->id);\n}\n\nstatic void "
                        "plugin_reset_destroy(struct qemu_plugin_reset_data "
                        "*data)\n{\n    go(data);\n}\n",
    "plugins/core.c": "struct qemu_plugin_state plugin;\n",
}


def snapshot(root):
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            if not os.path.islink(p):
                with open(p) as fh:
                    out[os.path.relpath(p, root)] = fh.read()
    return out


class ApplyTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()
        for rel, text in TREE.items():
            p = os.path.join(self.dir, rel)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "w") as f:
                f.write(text)

    def tearDown(self):
        shutil.rmtree(self.dir)

    def run_apply(self, *extra):
        return subprocess.run([sys.executable, APPLY, self.dir, *extra],
                              capture_output=True, text=True)

    def test_applies_once_then_is_idempotent(self):
        r = self.run_apply()
        self.assertEqual(r.returncode, 0, r.stderr)
        first = snapshot(self.dir)
        loader = first["plugins/loader.c"]
        self.assertNotIn("xorshift64star", loader)
        self.assertNotIn("qemu_plugin_add_dyn_cb_arr", loader)
        self.assertIn("ctx->id = plugin_new_id();", loader)
        self.assertIn("plugin_reset_destroy_done(qemu_plugin_id_t id, "
                      "void *data)\n{\n    go(data);", loader)
        self.assertIn("qpd_dep = dependency('qpd'",
                      first["plugins/meson.build"])
        self.assertIn("plugin_remove_cbs(", first["plugins/plugin.h"])
        self.assertIn("qpd-adapter", first["plugins/core.c"])
        self.assertIn("qpd_qemu_set_cb_flags", first["plugins/qpd-common.c.inc"])
        self.assertTrue(os.path.islink(
            os.path.join(self.dir, "subprojects", "qpd")))
        r = self.run_apply()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(snapshot(self.dir), first)
        self.assertNotIn(" edited ", r.stdout)

    def test_missing_anchor_changes_nothing(self):
        p = os.path.join(self.dir, "plugins", "loader.c")
        with open(p) as f:
            text = f.read()
        with open(p, "w") as f:
            f.write(text.replace("plugin_reset_destroy(", "renamed("))
        before = snapshot(self.dir)
        r = self.run_apply()
        self.assertEqual(r.returncode, 2)
        self.assertIn("refused, nothing changed", r.stderr)
        self.assertIn("plugin_reset_destroy", r.stderr)
        self.assertEqual(snapshot(self.dir), before)
        self.assertFalse(os.path.exists(
            os.path.join(self.dir, "subprojects")))

    def test_unsupported_version_changes_nothing(self):
        for version in ("9.0.2", "10.1.0", "11.1.3", "garbage"):
            with open(os.path.join(self.dir, "VERSION"), "w") as f:
                f.write(version + "\n")
            before = snapshot(self.dir)
            r = self.run_apply()
            self.assertEqual(r.returncode, 2, version)
            self.assertEqual(snapshot(self.dir), before)

    def test_dry_run_writes_nothing(self):
        before = snapshot(self.dir)
        r = self.run_apply("--dry-run")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("would edit", r.stdout)
        self.assertEqual(snapshot(self.dir), before)

    def test_accepts_10_2(self):
        with open(os.path.join(self.dir, "VERSION"), "w") as f:
            f.write("10.2.2\n")
        r = self.run_apply()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("QEMU 10.2.2", r.stdout)


if __name__ == "__main__":
    unittest.main()
