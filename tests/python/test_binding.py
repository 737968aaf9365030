"""Tests of the Python binding (python/kronvi): training on Fashion-MNIST arrays reproduces
`kronvi eval` on the same checkpoint exactly; bad input raises KronviError and never crashes;
every public call has a docstring. ctest runs it with PYTHONPATH, KRONVI_LIBRARY and KRONVI_CLI
set (CMakeLists.txt); KRONVI_TEST_DIR is a scratch directory."""

import gzip
import json
import math
import os
import pydoc
import subprocess
import sys
import tempfile
import unittest

import numpy as np

import kronvi

FASHION = os.environ.get("KRONVI_FASHION", "/usr/share/datasets/fashion-mnist")
CLI = os.environ.get("KRONVI_CLI")
TMP = os.environ.get("KRONVI_TEST_DIR") or tempfile.mkdtemp()


def idx_images(path, limit=None):
    """IDX images as float32 in [0, 1], scaled as the library's loader does (i / 255 in
    double, rounded to float)."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    n, rows, cols = (int.from_bytes(raw[4 * i : 4 * i + 4], "big") for i in range(1, 4))
    n = min(n, limit) if limit else n
    pix = np.frombuffer(raw, dtype=np.uint8, count=n * rows * cols, offset=16)
    lut = (np.arange(256, dtype=np.float64) / 255.0).astype(np.float32)
    return lut[pix].reshape(n, rows * cols)


def idx_labels(path, limit=None):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    n = int.from_bytes(raw[4:8], "big")
    n = min(n, limit) if limit else n
    return np.frombuffer(raw, dtype=np.uint8, count=n, offset=8).astype(np.int32)


def fashion(split, limit=None):
    pre = "train" if split == "train" else "t10k"
    x = idx_images(os.path.join(FASHION, pre + "-images-idx3-ubyte.gz"), limit)
    y = idx_labels(os.path.join(FASHION, pre + "-labels-idx1-ubyte.gz"), limit)
    return x, y


def toy(n=120, d=6, seed=0):
    r = np.random.default_rng(seed)
    x = r.random((n, d), dtype=np.float32)
    y = (x[:, 0] + x[:, 1] > 1).astype(np.int32)
    return x, y


@unittest.skipUnless(os.path.exists(os.path.join(FASHION, "t10k-images-idx3-ubyte.gz")),
                     "Fashion-MNIST not installed (Debian: dataset-fashion-mnist)")
class FashionMatchesCLI(unittest.TestCase):
    def test_train_save_eval_matches_cli(self):
        kronvi.set_num_threads(2)
        xtr, ytr = fashion("train", 3000)
        xte, yte = fashion("test")
        train = kronvi.Dataset(xtr, labels=ytr, image_shape=(1, 28, 28))
        test = kronvi.Dataset(xte, labels=yte)
        # the arrays equal what the library's IDX loader reads
        ltr, lte = kronvi.Dataset.load_dir(FASHION, 3000, 0)
        lx, ly = ltr.arrays()
        self.assertTrue(np.array_equal(lx, xtr) and np.array_equal(ly, ytr))
        self.assertTrue(np.array_equal(lte.arrays()[0], xte))

        net = kronvi.Network("784-100-10", family="mn", prior="ard", seed=1)
        seen = []
        learner = kronvi.Learner(net, kronvi.Optimizer("adam", lr=1e-3), callback=seen.append,
                                 epochs=2, batch=100, kl_warmup=1)
        self.assertFalse(learner.fit(train, test=test))
        self.assertEqual([p["epoch"] for p in seen], [1, 2])
        self.assertTrue(all(p["end_of_epoch"] == 1 and p["batches"] == 30 for p in seen))
        self.assertEqual(net.epochs, 2)

        ckpt = os.path.join(TMP, "py_fashion.safetensors")
        net.save(ckpt)
        ours = net.evaluate(test, samples=10, seed=1, threshold=3.0)
        loaded = kronvi.Network.load(ckpt)
        again = loaded.evaluate(test)
        for k in ours:
            self.assertTrue(ours[k] == again[k] or (math.isnan(ours[k]) and math.isnan(again[k])), k)
        # numpy arrays out: the mean-weight predictions give the same accuracy
        probs, entropy = loaded.predict(xte)
        self.assertEqual(probs.shape, (10000, 10))
        self.assertTrue(np.all(entropy >= 0) and np.all(entropy <= math.log(10) + 1e-9))
        self.assertEqual(float(np.mean(probs.argmax(1) == yte)), ours["accuracy"])
        bma, _ = loaded.predict(xte[:100], samples=10)
        self.assertTrue(np.allclose(bma.sum(1), 1))

        self.assertIsNotNone(CLI, "KRONVI_CLI (the kronvi binary) not set")
        out = subprocess.run([CLI, "eval", ckpt, "--data", FASHION, "--json", "--threads", "2"],
                             check=True, capture_output=True, text=True).stdout
        cli = json.loads(out)
        print("\nkronvi eval --json: %s" % out.strip())
        print("binding: rows %d, accuracy %.6f, accuracy_bma %.6f, nll_bma %.6f, ece %.6f, "
              "accuracy_pruned %.6f" % (ours["rows"], ours["accuracy"], ours["accuracy_bma"],
                                        ours["nll_bma"], ours["ece"], ours["accuracy_pruned"]))
        self.assertEqual(cli["rows"], ours["rows"])
        for k in ("accuracy", "nll", "accuracy_bma", "nll_bma", "ece", "entropy", "entropy_bma",
                  "accuracy_pruned"):
            self.assertEqual("%.6f" % cli[k], "%.6f" % ours[k], k)
        # accuracies are counts over 10000 rows: equal to the last digit means equal
        self.assertEqual(round(cli["accuracy"] * 10000), round(ours["accuracy"] * 10000))

        # pruning through the binding writes what `kronvi eval` reads the same way
        pruned = loaded.prune(3.0)
        total, kept = loaded.sparsity(3.0)
        self.assertEqual(total - kept, pruned)
        ckpt2 = os.path.join(TMP, "py_fashion_pruned.safetensors")
        loaded.save(ckpt2)
        cli2 = json.loads(subprocess.run([CLI, "eval", ckpt2, "--data", FASHION, "--json"],
                                         check=True, capture_output=True, text=True).stdout)
        self.assertEqual("%.6f" % cli2["accuracy"], "%.6f" % loaded.evaluate(test)["accuracy"])
        small = loaded.compress(3.0)
        ps, _ = small.predict(xte[:500])
        pl, _ = loaded.predict(xte[:500])
        self.assertTrue(np.array_equal(ps.argmax(1), pl.argmax(1)))
        print("pruned %d of %d weights; compressed %s -> %s" % (pruned, total, loaded.arch, small.arch))


class BadInput(unittest.TestCase):
    def setUp(self):
        self.x, self.y = toy()
        self.net = kronvi.Network("6-8-2", seed=3)

    def assertKronviError(self, fn, text, status=None):
        with self.assertRaises(kronvi.KronviError) as cm:
            fn()
        self.assertIn(text, str(cm.exception))
        if status:
            self.assertEqual(cm.exception.status_name, status)
        return cm.exception

    def test_dtype(self):
        x, y = self.x, self.y
        self.assertKronviError(lambda: kronvi.Dataset(x.astype(np.float64), labels=y), "dtype float64")
        self.assertKronviError(lambda: kronvi.Dataset(x, labels=y.astype(np.int64)), "dtype int64")
        self.assertKronviError(lambda: self.net.predict(x.astype(np.float16)), "expected float32")
        self.assertKronviError(lambda: kronvi.Dataset(x.tolist(), labels=y), "numpy array")

    def test_shape(self):
        x, y = self.x, self.y
        self.assertKronviError(lambda: kronvi.Dataset(x, labels=y[:-1]), "shape", "KVI_ERR_SHAPE")
        self.assertKronviError(lambda: kronvi.Dataset(x[0], labels=y), "dimensions")
        self.assertKronviError(lambda: self.net.predict(x[:, :5]), "shape")
        self.assertKronviError(lambda: self.net.predict(x[0]), "1 dimension")
        self.assertKronviError(lambda: self.net.predict(x[:0]), "empty")
        ds = kronvi.Dataset(x, labels=y)
        self.assertKronviError(lambda: ds.set_image_shape(1, 2, 2), "does not match", "KVI_ERR_SHAPE")
        wide = kronvi.Dataset(np.zeros((4, 7), np.float32), labels=np.zeros(4, np.int32))
        self.assertKronviError(lambda: self.net.evaluate(wide), "features", "KVI_ERR_SHAPE")
        self.assertKronviError(lambda: kronvi.Learner(self.net, epochs=1).fit(wide), "features")

    def test_not_contiguous(self):
        x, y = self.x, self.y
        self.assertKronviError(lambda: kronvi.Dataset(x[::2], labels=y[::2]), "C-contiguous")
        self.assertKronviError(lambda: self.net.predict(np.asfortranarray(x)), "C-contiguous")
        xx = np.ascontiguousarray(np.concatenate([x, x], 1)[:, ::2])
        kronvi.Dataset(xx, labels=y).close()  # the HINT's fix works

    def test_values_and_options(self):
        x, y = self.x.copy(), self.y
        x[3, 2] = np.nan
        self.assertKronviError(lambda: kronvi.Dataset(x, labels=y), "not finite", "KVI_ERR_NONFINITE")
        self.assertKronviError(lambda: kronvi.Dataset(self.x, labels=y - 1), "label -1")
        self.assertKronviError(lambda: kronvi.Network("6-q-2"), "unknown layer")
        self.assertKronviError(lambda: kronvi.Network("6-8-2", family="gauss"), "family")
        self.assertKronviError(lambda: kronvi.Network("6-8-2", colour="red"), "unknown option 'colour'")
        self.assertKronviError(lambda: kronvi.Network("6-8-2", seed="1 2"), "without spaces")
        self.assertKronviError(lambda: kronvi.Learner(self.net, batch=0), "batch=0")
        self.assertKronviError(lambda: kronvi.Optimizer("adamw"), "unknown optimizer")
        self.assertKronviError(lambda: kronvi.Optimizer("adam", lr=-1), "out of range")
        self.assertKronviError(lambda: kronvi.Optimizer("adam", speed=1), "unknown setting")
        self.assertKronviError(lambda: self.net.predict(self.x, samples=-1), "samples")
        self.assertKronviError(lambda: kronvi.Network.load(os.path.join(TMP, "missing.st")), "missing.st", "KVI_ERR_IO")
        bad = os.path.join(TMP, "not_a_checkpoint.safetensors")
        with open(bad, "wb") as f:
            f.write(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}      ")
        self.assertKronviError(lambda: kronvi.Network.load(bad), "not_a_checkpoint")
        self.assertKronviError(lambda: self.net.save(os.path.join(TMP, "no", "such", "dir", "x.st")), "x.st")
        self.assertKronviError(lambda: kronvi.set_num_threads(0), "outside")

    def test_closed_handles(self):
        ds = kronvi.Dataset(self.x, labels=self.y)
        opt = kronvi.Optimizer()
        net = kronvi.Network("6-8-2")
        learner = kronvi.Learner(net, opt, epochs=1, batch=20)
        for h in (ds, opt, net, learner):
            h.close()
            h.close()  # twice is fine
            self.assertTrue(h.closed)
        self.assertKronviError(lambda: ds.rows, "Dataset is closed", "KVI_ERR_STATE")
        self.assertKronviError(lambda: ds.arrays(), "Dataset is closed")
        self.assertKronviError(lambda: opt.set("lr", 1), "Optimizer is closed")
        self.assertKronviError(lambda: net.predict(self.x), "Network is closed")
        self.assertKronviError(lambda: net.save(os.path.join(TMP, "c.st")), "Network is closed")
        self.assertKronviError(lambda: learner.fit(ds), "Learner is closed")
        self.assertKronviError(lambda: kronvi.Learner(net), "Network is closed")
        # a learner whose network was closed
        net2 = kronvi.Network("6-8-2")
        l2 = kronvi.Learner(net2, epochs=1, batch=20)
        net2.close()
        self.assertKronviError(lambda: l2.fit(kronvi.Dataset(self.x, labels=self.y)), "Network is closed")
        ds2 = kronvi.Dataset(self.x, labels=self.y)
        ds2.close()
        self.assertKronviError(lambda: self.net.evaluate(ds2), "Dataset is closed")
        with kronvi.Dataset(self.x, labels=self.y) as d3:
            pass
        self.assertTrue(d3.closed)

    def test_callback_stop_and_exception(self):
        ds = kronvi.Dataset(self.x, labels=self.y)
        steps = []
        learner = kronvi.Learner(self.net, callback=lambda p: steps.append(p) or p["step"] >= 3,
                                 every_step=True, epochs=5, batch=20)
        self.assertTrue(learner.fit(ds))
        self.assertEqual(steps[-1]["step"], 3)
        self.assertEqual(steps[-1]["end_of_epoch"], 0)

        def boom(p):
            raise ValueError("boom at epoch %d" % p["epoch"])

        net = kronvi.Network("6-8-2")
        with self.assertRaises(ValueError):
            kronvi.Learner(net, callback=boom, epochs=2, batch=20).fit(ds)
        self.assertKronviError(lambda: kronvi.Learner(self.net, callback=3), "callable")


class Roundtrip(unittest.TestCase):
    def test_checkpoint_and_regression(self):
        x, y = toy(200, 6, 1)
        ds = kronvi.Dataset(x, labels=y)
        net = kronvi.Network("6-16-2", seed=2)
        kronvi.Learner(net, kronvi.Optimizer("adam", lr=3e-3), epochs=2, batch=50).fit(ds)
        path = os.path.join(TMP, "py_roundtrip.safetensors")
        net.save(path)
        back = kronvi.Network.load(path)
        self.assertEqual((back.arch, back.family, back.epochs, back.task), ("6-16-2", "mn", 2, "classify"))
        for s in (0, 7):
            self.assertTrue(np.array_equal(net.predict(x, samples=s)[0], back.predict(x, samples=s)[0]))
        # training continues from the checkpoint: epochs count on
        kronvi.Learner(back, epochs=3).fit(ds)
        self.assertEqual(back.epochs, 3)
        with self.assertRaises(kronvi.KronviError):
            kronvi.Learner(back, batch=10)  # a trained network keeps its configuration

        t = (x @ np.arange(6, dtype=np.float32)).astype(np.float32)
        reg = kronvi.Dataset(x, targets=t)
        self.assertEqual((reg.classes, reg.targets), (0, 1))
        rnet = kronvi.Network("6-8-1", task="regress", family="diag")
        kronvi.Learner(rnet, epochs=2, batch=50).fit(reg)
        out = rnet.predict(x)
        self.assertEqual(out.shape, (200, 1))
        self.assertFalse(math.isnan(rnet.evaluate(reg)["rmse"]))


class DoublePrecision(unittest.TestCase):
    def test_f64_library(self):
        """KRONVI_PRECISION=f64: libkronvi_f64 (kvid_ functions) and float64 arrays."""
        env = dict(os.environ, KRONVI_PRECISION="f64")
        lib = os.environ.get("KRONVI_LIBRARY")
        if lib:
            env["KRONVI_LIBRARY"] = lib.replace("libkronvi.so", "libkronvi_f64.so")
        code = (
            "import kronvi, numpy as np\n"
            "x = np.random.default_rng(0).random((60, 4)); y = (x[:, 0] > .5).astype(np.int32)\n"
            "n = kronvi.Network('4-8-2'); kronvi.Learner(n, epochs=2, batch=20).fit(kronvi.Dataset(x, labels=y))\n"
            "assert n.predict(x)[0].shape == (60, 2)\n"
            "try:\n    kronvi.Dataset(x.astype(np.float32), labels=y)\nexcept kronvi.KronviError as e:\n"
            "    print(kronvi.version(), e)\n")
        out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True).stdout
        self.assertIn("f64", out)
        self.assertIn("expected float64", out)


class Documentation(unittest.TestCase):
    def test_every_call_documented(self):
        text = pydoc.render_doc(kronvi, renderer=pydoc.plaintext)
        missing = []
        for name in kronvi.__all__:
            obj = getattr(kronvi, name)
            self.assertIn(name, text)
            if not (obj.__doc__ or "").strip():
                missing.append(name)
            if isinstance(obj, type):
                for attr, member in vars(obj).items():
                    if attr.startswith("_") or not (callable(member) or isinstance(member, (property, classmethod))):
                        continue
                    doc = getattr(getattr(obj, attr), "__doc__", None) if not isinstance(member, property) else member.__doc__
                    if not (doc or "").strip():
                        missing.append("%s.%s" % (name, attr))
                    self.assertIn(attr, text, "%s.%s not in help(kronvi)" % (name, attr))
        self.assertEqual(missing, [], "calls without a docstring")


if __name__ == "__main__":
    unittest.main(verbosity=2)
