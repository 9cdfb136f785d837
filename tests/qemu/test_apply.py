#!/usr/bin/env python3
"""qemu/apply on a synthetic tree that holds only the anchor lines, and on
QEMU's own sources when they are cached.

Checks the properties the tool promises: every edit lands once, a second
run changes nothing, and a refusal (missing anchor, unsupported version,
--copy without a git checkout of qpd) or a failure while writing (staged or
committed, injected here) leaves every file as it was.
"""
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
APPLY = os.path.join(ROOT, "qemu", "apply")
# Where ./run qemu keeps QEMU's release sources (the harness's cache).
QEMU_CACHE = os.path.join(os.environ.get("QPD_QEMU_CACHE",
                                         "/var/cache/qpd-qemu"), "src")

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



def state(root, strict=True):
    """Everything under ROOT: each file's bytes and mode (with STRICT also
    its inode and mtime, so a file rewritten with the same text differs),
    each link's target, each directory's mode."""
    out = {}
    for d, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(d, name)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", st.st_mode)
            else:
                with open(p, "rb") as f:
                    out[rel] = ("file", f.read(), st.st_mode) + \
                        ((st.st_ino, st.st_mtime_ns) if strict else ())
    return out


def leftovers(root):
    """Staged or backup files left in ROOT."""
    return sorted(rel for rel in state(root, strict=False)
                  if "qpd-apply" in os.path.basename(rel)
                  or rel.endswith(".qpd-tmp"))


# Runs qemu/apply (argv[4:]) with one function of os or shutil (argv[1])
# failing on its argv[2]-th call, and on every later one if argv[3] is 1.
FAULT = r"""
import errno, os, runpy, shutil, sys
name, at, later, script = sys.argv[1], int(sys.argv[2]), sys.argv[3], \
    sys.argv[4]
owner, attr = {"os": os, "shutil": shutil}[name.split(".")[0]], \
    name.split(".")[1]
real, calls = getattr(owner, attr), []
def failing(*a, **kw):
    calls.append(a)
    if len(calls) == at or (later == "1" and len(calls) > at):
        raise OSError(errno.EIO, "injected failure")
    return real(*a, **kw)
setattr(owner, attr, failing)
sys.argv = sys.argv[4:]
runpy.run_path(script, run_name="__main__")
"""


def git_env(ceiling):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_CEILING_DIRECTORIES=ceiling, PYTHONDONTWRITEBYTECODE="1")
    return env


def make_qpd_root(parent, git=True):
    """A small stand-in for qpd's checkout: qemu/apply, the adapter, a
    meson.build, a few more files; a git checkout of them if GIT."""
    root = os.path.join(parent, "qpd")
    for rel in ("qemu/apply", "qemu/adapter/core.c",
                "qemu/adapter/common.c.inc"):
        os.makedirs(os.path.join(root, os.path.dirname(rel)), exist_ok=True)
        shutil.copy2(os.path.join(ROOT, rel), os.path.join(root, rel))
    for rel, text in (("meson.build", "project('qpd', 'c')\n"),
                      ("src/a.c", "int a;\n"), ("src/sub/b.h", "#define B\n")):
        os.makedirs(os.path.join(root, os.path.dirname(rel)), exist_ok=True)
        with open(os.path.join(root, rel), "w") as f:
            f.write(text)
    if git:
        env = git_env(parent)
        subprocess.run(["git", "init", "-q", root], check=True, env=env)
        subprocess.run(["git", "-C", root, "add", "-A"], check=True, env=env)
    return root


def have_git():
    return shutil.which("git") is not None


class ApplyTest(unittest.TestCase):
    def setUp(self):
        self.base = tempfile.mkdtemp()
        self.dir = os.path.join(self.base, "qemu")
        self.make_tree()

    def make_tree(self, tree=TREE):
        if os.path.lexists(self.dir):
            shutil.rmtree(self.dir)
        for rel, text in tree.items():
            p = os.path.join(self.dir, rel)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "w") as f:
                f.write(text)

    def edit_loader(self, old, new):
        p = os.path.join(self.dir, "plugins", "loader.c")
        with open(p) as f:
            text = f.read()
        self.assertIn(old, text)
        with open(p, "w") as f:
            f.write(text.replace(old, new))

    def tearDown(self):
        shutil.rmtree(self.base)

    def run_apply(self, *extra, apply=APPLY, env=None, fault=None):
        """qemu/apply (APPLY: a copy of it works on the qpd around it) on
        the tree; FAULT: (function, k, later) fails it on its k-th call,
        and on every later one if LATER."""
        env = env or git_env(self.base)
        if fault is None:
            cmd = [sys.executable, apply]
        else:
            name, k, later = fault
            cmd = [sys.executable, "-c", FAULT, name, str(k),
                   "1" if later else "0", apply]
        return subprocess.run(cmd + [self.dir, *extra],
                              capture_output=True, text=True, env=env)

    def assert_refused_unchanged(self, r, before, *words):
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("qemu/apply: refused, nothing changed: ", r.stderr)
        for w in words:
            self.assertIn(w, r.stderr)
        self.assertEqual(state(self.dir), before)
        self.assertEqual(leftovers(self.dir), [])

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


    # --copy without a git checkout of qpd: refused before any write.

    def test_copy_without_git_checkout_changes_nothing(self):
        for applied in (False, True):
            self.make_tree()
            if applied:
                r = self.run_apply()
                self.assertEqual(r.returncode, 0, r.stderr)
            aux = tempfile.mkdtemp(dir=self.base)
            fake = make_qpd_root(aux, git=False)
            apply = os.path.join(fake, "qemu", "apply")
            before = state(self.dir)
            # Not a git checkout: git ls-files fails.
            r = self.run_apply("--copy", apply=apply, env=git_env(aux))
            self.assert_refused_unchanged(r, before, "git checkout of qpd")
            # No git at all.
            nogit = os.path.join(aux, "empty-path")
            os.mkdir(nogit)
            r = self.run_apply("--copy", apply=apply,
                               env=dict(git_env(aux), PATH=nogit))
            self.assert_refused_unchanged(r, before, "git")
            if have_git():
                # A git checkout, but not of qpd (git lists nothing).
                env = git_env(aux)
                subprocess.run(["git", "init", "-q", fake], check=True,
                               env=env)
                r = self.run_apply("--copy", apply=apply, env=env)
                self.assert_refused_unchanged(r, before, "lists no")
            # --dry-run finds it too.
            r = self.run_apply("--copy", "--dry-run", apply=apply,
                               env=git_env(aux))
            self.assert_refused_unchanged(r, before)

    @unittest.skipUnless(have_git(), "no git")
    def test_copy_of_a_tracked_path_that_is_no_file_is_refused(self):
        root = make_qpd_root(self.base)
        apply = os.path.join(root, "qemu", "apply")
        os.unlink(os.path.join(root, "src", "a.c"))
        os.mkdir(os.path.join(root, "src", "a.c"))
        before = state(self.dir)
        r = self.run_apply("--copy", apply=apply)
        self.assert_refused_unchanged(r, before, "src/a.c")

    @unittest.skipUnless(have_git(), "no git")
    def test_copy_of_a_fake_checkout(self):
        root = make_qpd_root(self.base)
        apply = os.path.join(root, "qemu", "apply")
        os.unlink(os.path.join(root, "src", "a.c"))     # deleted: skipped
        with open(os.path.join(root, "untracked.c"), "w") as f:
            f.write("x\n")
        r = self.run_apply("--copy", apply=apply)
        self.assertEqual(r.returncode, 0, r.stderr)
        sub = os.path.join(self.dir, "subprojects", "qpd")
        self.assertFalse(os.path.islink(sub))
        got = sorted(rel for rel, v in state(sub).items() if v[0] == "file")
        self.assertEqual(got, ["meson.build", "qemu/adapter/common.c.inc",
                               "qemu/adapter/core.c", "qemu/apply",
                               "src/sub/b.h"])
        self.assertEqual(leftovers(self.dir), [])

        def outside(s):
            return {k: v for k, v in s.items()
                    if not k.startswith("subprojects")}

        # Again: the copy is replaced, nothing else is touched.
        before = state(self.dir)
        r = self.run_apply("--copy", apply=apply)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(outside(state(self.dir)), outside(before))
        self.assertEqual(leftovers(self.dir), [])
        # Linking now keeps the copy.
        r = self.run_apply()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("directory in place (kept)", r.stdout)

    @unittest.skipUnless(have_git() and os.path.exists(
        os.path.join(ROOT, ".git")), "qpd is not a git checkout here")
    def test_copy_of_this_checkout(self):
        r = self.run_apply("--copy")
        self.assertEqual(r.returncode, 0, r.stderr)
        sub = os.path.join(self.dir, "subprojects", "qpd")
        self.assertFalse(os.path.islink(sub))
        for rel in ("meson.build", "qemu/apply", "qemu/adapter/core.c"):
            self.assertTrue(os.path.isfile(os.path.join(sub, rel)), rel)
        self.assertEqual(leftovers(self.dir), [])

    # Failures while writing: injected, the tree stays as it was.

    def check_rollback(self, prepare, apply, extra, points):
        """PREPARE()s a fresh tree, then applies with the k-th os.replace
        failing, for k = 1, 2, ... until a run gets through: the POINTS
        runs before it must each be refused with the tree as it was (every
        file the same inode, not just the same text)."""
        k = 0
        while True:
            k += 1
            self.make_tree()
            prepare()
            before = state(self.dir)
            r = self.run_apply(*extra, apply=apply,
                               fault=("os.replace", k, False))
            if r.returncode == 0:
                break
            self.assert_refused_unchanged(r, before, "injected failure")
            self.assertLess(k, 50)
        self.assertEqual(k - 1, points, r.stdout)
        self.assertEqual(leftovers(self.dir), [])

    def test_commit_failure_puts_everything_back(self):
        def nothing():
            pass

        def link_elsewhere():
            os.makedirs(os.path.join(self.dir, "subprojects"))
            os.symlink("/nonexistent/qpd",
                       os.path.join(self.dir, "subprojects", "qpd"))

        # 5 files and the link.
        self.check_rollback(nothing, APPLY, (), 6)
        # The same, the link replacing another one.
        self.check_rollback(link_elsewhere, APPLY, (), 6)

    @unittest.skipUnless(have_git(), "no git")
    def test_commit_failure_puts_the_copy_back(self):
        root = make_qpd_root(tempfile.mkdtemp(dir=self.base))
        apply = os.path.join(root, "qemu", "apply")

        def nothing():
            pass

        def copied():
            self.assertEqual(self.run_apply("--copy", apply=apply)
                             .returncode, 0)

        def linked():
            self.assertEqual(self.run_apply(apply=apply).returncode, 0)

        # 5 files and the copy renamed in.
        self.check_rollback(nothing, apply, ("--copy",), 6)
        # The old copy set aside, the new one renamed in.
        self.check_rollback(copied, apply, ("--copy",), 2)
        # The link set aside, the copy renamed in.
        self.check_rollback(linked, apply, ("--copy",), 2)

    @unittest.skipUnless(have_git(), "no git")
    def test_staging_failure_changes_nothing(self):
        root = make_qpd_root(self.base)
        apply = os.path.join(root, "qemu", "apply")
        for fault, extra in ((("shutil.copy2", 1, False), ("--copy",)),
                             (("shutil.copy2", 3, False), ("--copy",)),
                             (("os.symlink", 1, False), ())):
            self.make_tree()
            before = state(self.dir)
            r = self.run_apply(*extra, apply=apply, fault=fault)
            self.assert_refused_unchanged(r, before, "injected failure")

    def test_failure_to_put_back_is_reported(self):
        r = self.run_apply(fault=("os.replace", 2, True))
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("FAILED, the tree is partly changed", r.stderr)
        self.assertIn("the originals are in", r.stderr)

    # A missing anchor is an error unless the edit is shown made.

    def test_missing_function_is_refused(self):
        dyn = ("void qemu_plugin_add_dyn_cb_arr(GArray *arr)\n{\n    "
               "body();\n}\n\n")
        xor = ("/*\n * gen\n */\nstatic uint64_t xorshift64star(uint64_t "
               "x)\n{\n    return x;\n}\n\n")
        for old, new, name, reason in (
                (dyn, "", "qemu_plugin_add_dyn_cb_arr",
                 "run-time memory callback lists"),
                (dyn, dyn.replace("GArray *arr", "GArray *arr, int n"),
                 "qemu_plugin_add_dyn_cb_arr",
                 "run-time memory callback lists"),
                (xor, "", "xorshift64star", "random-id generator")):
            self.make_tree()
            self.edit_loader(old, new)
            before = state(self.dir)
            for extra in ((), ("--dry-run",), ("--copy",)):
                r = self.run_apply(*extra)
                self.assert_refused_unchanged(r, before, "plugins/loader.c",
                                              name, reason,
                                              "plugin_reset_destroy_done")
            self.assertFalse(os.path.exists(
                os.path.join(self.dir, "subprojects")))

    def test_missing_function_with_one_marker_is_refused(self):
        self.edit_loader("void qemu_plugin_add_dyn_cb_arr(GArray *arr)\n"
                         "{\n    body();\n}\n\n", "")
        self.edit_loader("ctx->id = xorshift64star(ctx->id);",
                         "ctx->id = plugin_new_id();")
        before = state(self.dir)
        r = self.run_apply()
        self.assert_refused_unchanged(r, before, "qemu_plugin_add_dyn_cb_arr")

    def test_applied_tree_is_done_everywhere_and_untouched(self):
        r = self.run_apply()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.count(" edited "), 6, r.stdout)
        before = state(self.dir)
        for extra in (("--dry-run",), ()):
            r = self.run_apply(*extra)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout.count(" (done) "), 6, r.stdout)
            self.assertNotIn("edit", r.stdout.replace(" (done) ", ""))
            # Not even rewritten with the same text.
            self.assertEqual(state(self.dir), before)
        self.assertEqual(leftovers(self.dir), [])


class RealQemuTest(unittest.TestCase):
    """QEMU's own sources, when cached (read-only: copied first)."""

    VERSIONS = ("10.0.13", "10.2.2")

    def setUp(self):
        self.base = tempfile.mkdtemp()

    def tearDown(self):
        shutil.rmtree(self.base)

    def tree(self, version):
        src = os.path.join(QEMU_CACHE, "qemu-" + version)
        if not os.path.isfile(os.path.join(src, "plugins", "loader.c")):
            return None
        dst = os.path.join(self.base, version)
        os.makedirs(dst)
        shutil.copytree(os.path.join(src, "plugins"),
                        os.path.join(dst, "plugins"))
        shutil.copy2(os.path.join(src, "VERSION"), dst)
        return dst

    def apply(self, tree, *extra):
        return subprocess.run([sys.executable, APPLY, tree, *extra],
                              capture_output=True, text=True)

    def test_applies_cleanly_twice(self):
        tried = 0
        for version in self.VERSIONS:
            tree = self.tree(version)
            if tree is None:
                continue
            tried += 1
            with self.subTest(version=version):
                pristine = state(tree)
                r = self.apply(tree, "--dry-run")
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertIn("QEMU " + version, r.stdout)
                self.assertEqual(r.stdout.count(" would edit "), 6, r.stdout)
                self.assertEqual(state(tree), pristine)
                r = self.apply(tree)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(r.stdout.count(" edited "), 6, r.stdout)
                with open(os.path.join(tree, "plugins", "loader.c")) as f:
                    loader = f.read()
                self.assertNotIn("qemu_plugin_add_dyn_cb_arr", loader)
                self.assertNotIn("xorshift64star", loader)
                self.assertIn("ctx->id = plugin_new_id();", loader)
                self.assertIn("static void plugin_reset_destroy_done(", loader)
                self.assertTrue(os.path.islink(
                    os.path.join(tree, "subprojects", "qpd")))
                applied = state(tree)
                for extra in (("--dry-run",), ()):
                    r = self.apply(tree, *extra)
                    self.assertEqual(r.returncode, 0, r.stderr)
                    self.assertEqual(r.stdout.count(" (done) "), 6, r.stdout)
                    self.assertEqual(state(tree), applied)
                self.assertEqual(leftovers(tree), [])
        if not tried:
            self.skipTest("no QEMU sources in %s (./run qemu fetches them)"
                          % QEMU_CACHE)


if __name__ == "__main__":
    unittest.main()
