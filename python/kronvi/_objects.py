"""The classes of the kronvi package (documented there): Dataset, Optimizer, Network, Learner."""

import ctypes

import numpy as np

from . import KronviError, _Handle, _array, _check, _fail, _float, _int, _options, _path, _ptr
from ._lib import C, C_REAL, PROGRESS_FN, REAL, Progress, Scores


class Dataset(_Handle):
    """A data set: n rows of d features with class labels (classification) or targets
    (regression), copied into the library.

    Dataset(x, labels=None, targets=None, classes=0, image_shape=None)
        x: (n, d) array of the library's dtype (float32), C-contiguous.
        labels: (n,) int32 class labels in [0, classes) (classes 0: max label + 1), or
        targets: (n, k) or (n,) regression targets of x's dtype; exactly one of the two.
        image_shape: (channels, height, width) when the rows are HWC images (needed by
            convolutional networks; recorded in checkpoints).
    """

    _free = C.dset_free
    _what = "Dataset"

    def __init__(self, x, labels=None, targets=None, classes=0, image_shape=None):
        super().__init__(None)
        w = "Dataset"
        x = _array(x, REAL, "x", w, ndim=2)
        n, d = x.shape
        h = ctypes.c_void_p()
        if (labels is None) == (targets is None):
            _fail(1, "Dataset: give exactly one of labels (classification) and targets (regression)")
        if labels is not None:
            labels = _array(labels, np.int32, "labels", w, ndim=1, shape=(n,))
            classes = _int(classes, w, "classes", 0, 1000000)
            _check(C.dset_create(ctypes.byref(h), _ptr(x, C_REAL), n, d, _ptr(labels, ctypes.c_int32), classes))
        else:
            if isinstance(targets, np.ndarray) and targets.ndim == 1:
                targets = targets.reshape(-1, 1)
            targets = _array(targets, REAL, "targets", w, ndim=2, shape=(n, None))
            _check(C.dset_create_regression(ctypes.byref(h), _ptr(x, C_REAL), n, d, _ptr(targets, C_REAL), targets.shape[1]))
        self._h = h.value
        if image_shape is not None:
            self.set_image_shape(*image_shape)

    @classmethod
    def load_dir(cls, directory, limit_train=0, limit_test=0):
        """Loads the (train, test) splits of a directory of IDX files (MNIST, Fashion-MNIST)
        or CIFAR-10 batches, pixels scaled to [0, 1], as kronvi train --data does.
        limit_train / limit_test keep the first rows (0: all)."""
        w = "Dataset.load_dir"
        tr, te = ctypes.c_void_p(), ctypes.c_void_p()
        _check(C.dset_load_dir(ctypes.byref(tr), ctypes.byref(te), _path(directory, w),
                               _int(limit_train, w, "limit_train", 0), _int(limit_test, w, "limit_test", 0)))
        return cls._wrap(tr.value), cls._wrap(te.value)

    def set_image_shape(self, channels, height, width):
        """Declares the rows HWC images of channels x height x width (product = features)."""
        w = "Dataset.set_image_shape"
        _check(C.dset_set_image_shape(self._ptr(w), _int(channels, w, "channels"),
                                      _int(height, w, "height"), _int(width, w, "width")))

    @property
    def rows(self):
        """Number of rows n."""
        return C.dset_rows(self._ptr("Dataset.rows"))

    @property
    def features(self):
        """Features per row d."""
        return C.dset_features(self._ptr("Dataset.features"))

    @property
    def classes(self):
        """Number of classes (0 for regression data)."""
        return C.dset_classes(self._ptr("Dataset.classes"))

    @property
    def targets(self):
        """Regression targets per row k (0 for classification data)."""
        return C.dset_targets(self._ptr("Dataset.targets"))

    def arrays(self):
        """Copies of the data: (x (n, d), labels (n,) int32) or (x, targets (n, k))."""
        p = self._ptr("Dataset.arrays")
        n, d, k = self.rows, self.features, self.targets
        x = np.empty((n, d), dtype=REAL)
        if k > 0:
            t = np.empty((n, k), dtype=REAL)
            _check(C.dset_copy(p, _ptr(x, C_REAL), None, _ptr(t, C_REAL)))
            return x, t
        y = np.empty(n, dtype=np.int32)
        _check(C.dset_copy(p, _ptr(x, C_REAL), _ptr(y, ctypes.c_int32), None))
        return x, y

    def __len__(self):
        return self.rows

    def __repr__(self):
        if self.closed:
            return "<kronvi.Dataset (closed)>"
        return "<kronvi.Dataset %d x %d, %s>" % (
            self.rows, self.features,
            "%d classes" % self.classes if self.classes else "%d targets" % self.targets)


class Optimizer(_Handle):
    """Optimizer settings: Optimizer(kind="adam", **settings).

    kind: adam, sgd, kfac, noisy-kfac, ... (kronvi train --help lists them), with that kind's
    defaults; settings: lr, momentum, weight_decay, nesterov, damping, ema, kl_clip,
    inverse_every, ekfac (e.g. Optimizer("adam", lr=1e-3)).
    """

    _free = C.optim_free
    _what = "Optimizer"

    def __init__(self, kind="adam", **settings):
        super().__init__(None)
        if not isinstance(kind, str):
            _fail(1, "Optimizer: kind must be a string, not %r" % (kind,))
        h = ctypes.c_void_p()
        _check(C.optim_create(ctypes.byref(h), kind.encode()))
        self._h = h.value
        for k, v in settings.items():
            self.set(k, v)

    def set(self, key, value):
        """Sets one setting (lr, momentum, weight_decay, nesterov, damping, ema, kl_clip,
        inverse_every, ekfac) to a number."""
        _check(C.optim_set(self._ptr("Optimizer.set"), str(key).encode(), _float(value, "Optimizer.set", key)))

    def get(self, key):
        """The value of one setting."""
        v = ctypes.c_double()
        _check(C.optim_get(self._ptr("Optimizer.get"), str(key).encode(), ctypes.byref(v)))
        return v.value

    @property
    def kind(self):
        """The optimizer kind ("adam")."""
        return C.optim_kind(self._ptr("Optimizer.kind")).decode()

    def __repr__(self):
        return "<kronvi.Optimizer %s>" % ("(closed)" if self.closed else self.kind)


class Network(_Handle):
    """A network, its variational posterior and its training state.

    Network(arch, in_size=0, **options)
        arch: "784-100-10" (an MLP) or "1-32-mp-64-mp-flatten-10" (convolutional).
        options (kronvi train's defaults): family ("mn", "mn-diag", "diag", "point"), prior
        ("ard", "group", "scalar", "fixed:VAR"), act ("elu", "relu", "none"), bias,
        init_log_sigma, seed, batch (the largest batch run at once), task ("classify",
        "regress"), in_h, in_w.
    Network.load(path) reads a checkpoint (of kronvi train or Network.save).
    """

    _free = C.network_free
    _what = "Network"

    def __init__(self, arch, in_size=0, **options):
        super().__init__(None)
        w = "Network"
        if not isinstance(arch, str):
            _fail(1, "Network: arch must be a string, not %r" % (arch,))
        h = ctypes.c_void_p()
        _check(C.network_create(ctypes.byref(h), arch.encode(), _int(in_size, w, "in_size", 0),
                                _options(w, options)))
        self._h = h.value

    @classmethod
    def load(cls, path):
        """Loads a checkpoint: network, posterior and training state."""
        h = ctypes.c_void_p()
        _check(C.network_load(ctypes.byref(h), _path(path, "Network.load")))
        return cls._wrap(h.value)

    def save(self, path):
        """Writes a checkpoint (safetensors, atomically) that Network.load and the kronvi CLI
        (kronvi eval, prune, report, train --resume) read."""
        _check(C.network_save(self._ptr("Network.save"), _path(path, "Network.save")))

    @property
    def inputs(self):
        """Features per input row."""
        return C.network_inputs(self._ptr("Network.inputs"))

    @property
    def outputs(self):
        """Classes (classification) or targets (regression)."""
        return C.network_outputs(self._ptr("Network.outputs"))

    @property
    def arch(self):
        """The architecture string."""
        return C.network_arch(self._ptr("Network.arch")).decode()

    @property
    def family(self):
        """The variational family ("mn", "diag", ...)."""
        return C.network_family(self._ptr("Network.family")).decode()

    @property
    def param_count(self):
        """Parameters of the variational posterior."""
        return C.network_param_count(self._ptr("Network.param_count"))

    @property
    def epochs(self):
        """Epochs trained."""
        return C.network_epochs(self._ptr("Network.epochs"))

    def predict(self, x, samples=0, seed=1):
        """Predictions for the rows of x (n, inputs) with per-example uncertainty.

        Classification: returns (probs (n, classes) float64, entropy (n,) float64): the
        predictive probabilities (samples = 0: of the posterior-mean weights; samples = S > 0:
        the Bayesian model average of S weight samples drawn from seed) and each row's
        predictive entropy in nats. Regression: returns the mean-weight outputs (n, targets)
        (samples must be 0)."""
        w = "Network.predict"
        p = self._ptr(w)
        if isinstance(x, np.ndarray) and x.ndim == 1:
            _fail(2, "%s: x has 1 dimension %s, expected (rows, %d) (HINT: x.reshape(1, -1))"
                  % (w, x.shape, self.inputs))
        x = _array(x, REAL, "x", w, ndim=2, shape=(None, self.inputs))
        samples = _int(samples, w, "samples", 0, 100000)
        seed = _int(seed, w, "seed", 0, 2**64 - 1)
        n = x.shape[0]
        probs = np.empty((n, self.outputs), dtype=np.float64)
        classify = self.task == "classify"
        ent = np.empty(n, dtype=np.float64) if classify else None
        _check(C.network_predict(p, _ptr(x, C_REAL), n, x.shape[1], samples, seed,
                                 _ptr(probs, ctypes.c_double),
                                 _ptr(ent, ctypes.c_double) if classify else None))
        return (probs, ent) if classify else probs

    @property
    def task(self):
        """ "classify" or "regress"."""
        return C.network_task(self._ptr("Network.task")).decode()

    def evaluate(self, data, samples=10, seed=1, threshold=3.0):
        """Evaluates on a Dataset what `kronvi eval` prints, with its defaults: a dict with
        rows, accuracy (posterior-mean weights), nll, accuracy_bma (Bayesian model average of
        `samples` weight samples drawn from seed), nll_bma, ece, entropy, entropy_bma,
        accuracy_pruned (log alpha > threshold pruned), rmse (regression) and samples; NaN
        where not computed. The numbers equal the CLI's for the same checkpoint and data."""
        w = "Network.evaluate"
        p = self._ptr(w)
        if not isinstance(data, Dataset):
            _fail(1, "%s: data must be a kronvi.Dataset, not %s" % (w, type(data).__name__))
        s = Scores()
        _check(C.network_evaluate(p, data._ptr(w), _int(samples, w, "samples", 0, 100000),
                                  _int(seed, w, "seed", 0, 2**64 - 1), _float(threshold, w, "threshold"),
                                  ctypes.byref(s)))
        return {name: getattr(s, name) for name, _ in Scores._fields_}

    def sparsity(self, threshold=3.0):
        """(total, kept): the weights and those with log alpha <= threshold."""
        total, kept = ctypes.c_int64(), ctypes.c_int64()
        _check(C.network_sparsity(self._ptr("Network.sparsity"), _float(threshold, "Network.sparsity", "threshold"),
                                  ctypes.byref(total), ctypes.byref(kept)))
        return total.value, kept.value

    def prune(self, threshold=3.0):
        """Sets to zero the posterior means of the weights with log alpha > threshold (what
        kronvi prune writes); returns how many."""
        n = ctypes.c_int64()
        _check(C.network_prune(self._ptr("Network.prune"), _float(threshold, "Network.prune", "threshold"),
                               ctypes.byref(n)))
        return n.value

    def compress(self, threshold=3.0):
        """A new, smaller Network without the units that the network pruned at threshold does
        not need (kronvi prune --structured); its mean-weight predictions equal the pruned
        network's up to rounding."""
        h = ctypes.c_void_p()
        _check(C.network_compress(ctypes.byref(h), self._ptr("Network.compress"),
                                  _float(threshold, "Network.compress", "threshold")))
        return Network._wrap(h.value)

    def __repr__(self):
        if self.closed:
            return "<kronvi.Network (closed)>"
        return "<kronvi.Network %s %s, %d epochs>" % (self.arch, self.family, self.epochs)


class Learner(_Handle):
    """Trains a Network: Learner(network, optimizer=None, callback=None, every_step=False,
    **options).

    optimizer: an Optimizer (None: Adam with its defaults); its settings are copied.
    callback(progress): called after every epoch (and after every step with every_step) with
        a dict: epoch, epochs, end_of_epoch, batch, batches, step, loss, accuracy, kl, lr,
        seconds, sparsity, val_accuracy, test_accuracy (NaN where not known). A true return
        value stops training; an exception in it stops training and is raised by fit().
    options (kronvi train's defaults): epochs=10, batch=100, kl_warmup, kl_schedule ("linear",
        "exp", "constant"), samples (BMA samples of the test evaluation), seed (the network's),
        lr_decay, lr_final, patience, prune_threshold, hflip, progress (1: a line per epoch on
        stderr), prior_update_every, finetune_pruned, noise_precision, learn_noise.
    A network that was trained already keeps its optimizer and configuration; only epochs,
    progress and samples may be given then.
    """

    _free = C.learner_free
    _what = "Learner"

    def __init__(self, network, optimizer=None, callback=None, every_step=False, **options):
        super().__init__(None)
        w = "Learner"
        if not isinstance(network, Network):
            _fail(1, "Learner: network must be a kronvi.Network, not %s" % type(network).__name__)
        if optimizer is not None and not isinstance(optimizer, Optimizer):
            _fail(1, "Learner: optimizer must be a kronvi.Optimizer, not %s" % type(optimizer).__name__)
        if callback is not None and not callable(callback):
            _fail(1, "Learner: callback must be callable")
        h = ctypes.c_void_p()
        _check(C.learner_create(ctypes.byref(h), network._ptr(w),
                                optimizer._ptr(w) if optimizer is not None else None,
                                _options(w, options)))
        self._h = h.value
        self.network = network  # kept alive with the learner
        self._callback, self._error = callback, None
        self._cfn = PROGRESS_FN(self._on_progress)
        if callback is not None:
            _check(C.learner_set_callback(self._h, self._cfn, None, 1 if every_step else 0))

    def _on_progress(self, p, user):
        try:
            d = {name: getattr(p.contents, name) for name, _ in Progress._fields_}
            return 1 if self._callback(d) else 0
        except BaseException as e:  # raised again by fit()
            self._error = e
            return 1

    def fit(self, train, val=None, test=None):
        """Trains on the Dataset train until the epochs option (counting the network's
        epochs). val enables early stopping (patience); test is evaluated after every epoch.
        Returns True when the callback stopped training."""
        w = "Learner.fit"
        p = self._ptr(w)
        net = self.network._ptr(w)  # a closed network raises here
        sets = []
        for name, d in (("train", train), ("val", val), ("test", test)):
            if d is None and name != "train":
                sets.append(None)
                continue
            if not isinstance(d, Dataset):
                _fail(1, "%s: %s must be a kronvi.Dataset, not %s" % (w, name, type(d).__name__))
            sets.append(d._ptr(w))
        del net
        self._error = None
        st = C.learner_fit(p, *sets)
        if self._error is not None:
            e, self._error = self._error, None
            raise e
        _check(st)
        return bool(C.learner_stopped(p))

    def __repr__(self):
        return "<kronvi.Learner%s>" % (" (closed)" if self.closed else " of %r" % self.network)


for _c in (Dataset, Optimizer, Network, Learner):
    _c.__module__ = "kronvi"
KronviError.__module__ = "kronvi"
