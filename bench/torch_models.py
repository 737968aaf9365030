"""kronvi's Bayesian MLP and CNN in PyTorch (Debian python3-torch), shared by bench/torch_mlp.py,
bench/torch_cnn.py and bench/torch_train.py: the same parameterization, initialization, local
reparameterization, ARD KL and pruning rule as kronvi (docs/prob.md, docs/nn.md,
docs/nn-conv.md), written as the fastest straightforward PyTorch we found (docs/benchmarks.md,
"PyTorch baselines").

Weight (n x m, rows = inputs / input taps, columns = outputs):
  point    M, b
  diag     log-sigma parameters; var = sigma^2 = exp(2 log_sigma)
           KL = 1/2 sum log(1 + M^2 / sigma^2)
  mn       A = tril(A_raw, -1) + diag(exp(diag(A_raw))) (n x n), B likewise (m x m);
           U_ii = ||A_i,:||^2, V_jj = ||B_j,:||^2
           KL = 1/2 sum log(1 + M^2/(U_ii V_jj)) + 1/2 [m (sum log U_ii - log|U|)
                + n (sum log V_jj - log|V|)],  log|U| = 2 sum log A_ii
  mn-diag  MN plus D = exp(log_d); KL = 1/2 sum log(M^2 + U_ii V_jj + D_ij) - 1/2 LB with
           LB = nm logsumexp(ld1/nm, ld2/nm), ld1 = 2 m sum log A_ii + 2 n sum log B_jj,
           ld2 = sum log D (kronvi's Minkowski bound, kvi_mndiag_kl_ard)
Initialization: M ~ N(0, 1/n), b = 0, sigma = e^-5 (A, B diagonal with e^-2.5; MN+DIAG half the
variance in each part).

Local reparameterization for input rows P (one row per example; for a convolution one row per
output position: its receptive field):
  point    P M + b
  diag     P M + b + sqrt((P o P) sigma^2) o eps
  mn       P M + b + ||P A||_row (eps B^T)
  mn-diag  mn + sqrt((P o P) D) o eps'
A convolution computes all three products as convolutions of the image (never unfolding it):
P M = conv(x, M), (P o P) sigma^2 = conv(x o x, sigma^2), P A = conv(x, A) with the n columns of A
as n filters of shape (c_in, 3, 3), and eps B^T as a 1 x 1 convolution of the noise. The rows of a
convolution's weight are the taps in torch's (c_in, ky, kx) order (kronvi: (ky, kx, c_in)); with
a lower-triangular A over the rows that is the same family of distributions.

sqrt at 0 (an all-zero receptive field, e.g. the black border of a Fashion-MNIST image) has the
subgradient 0, as in kronvi (the variance is clamped at 1e-30 before the sqrt).

Pruning (prune_threshold): a weight is dropped when log alpha = log Var_ij - log max(M_ij^2,
1e-30) > threshold (Var = sigma^2, U_ii V_jj, or U_ii V_jj + D_ij); point weights are never
dropped; biases are kept (kronvi's kvi_dense_log_alpha and kvi_evaluate).
"""
import gzip
import math
import os

import torch
import torch.nn.functional as F
from torch import nn

FAMILIES = ("point", "diag", "mn", "mn-diag")
INIT_LOG_SIGMA = -5.0
VAR_FLOOR = 1e-30


def load_idx(data_dir, test=True):
    """Fashion-MNIST IDX (gzip) straight into float32 (N, 784) in [0, 1] / int64 tensors."""

    def read(name, header, ndims):
        with gzip.open(os.path.join(data_dir, name), "rb") as f:
            buf = bytearray(f.read())
        dims = [int.from_bytes(buf[4 + 4 * i:8 + 4 * i], "big") for i in range(ndims)]
        return torch.frombuffer(buf, dtype=torch.uint8, offset=header), dims

    def images(name):
        raw, (n, r, c) = read(name, 16, 3)
        return raw.view(n, r * c).to(torch.float32).div_(255.0)

    def labels(name):
        return read(name, 8, 1)[0].to(torch.int64)

    out = [images("train-images-idx3-ubyte.gz"), labels("train-labels-idx1-ubyte.gz")]
    if test:
        out += [images("t10k-images-idx3-ubyte.gz"), labels("t10k-labels-idx1-ubyte.gz")]
    return tuple(out)


def chol(raw):
    """Lower-triangular factor with its diagonal stored as logs."""
    return torch.tril(raw, -1) + torch.diag(torch.exp(torch.diagonal(raw)))


def randn_as(t):
    """Standard normals shaped like t, generated contiguously (torch's vectorized normal_ needs a
    contiguous tensor; randn_like of a channels_last tensor takes a scalar path ~10x slower) and
    viewed in t's memory format."""
    if t.dim() == 4 and not t.is_contiguous():
        Bn, C, H, W = t.shape
        return torch.randn(Bn, H, W, C).permute(0, 3, 1, 2)
    return torch.randn(t.shape)


def sqrt0(v):
    """sqrt with the subgradient 0 at 0."""
    return torch.sqrt(torch.clamp_min(v, VAR_FLOOR))


class Weight(nn.Module):
    """An n x m weight with its posterior, ARD KL and log alpha."""

    def __init__(self, n, m, family):
        super().__init__()
        self.n, self.m, self.family = n, m, family
        self.M = nn.Parameter(torch.randn(n, m) / math.sqrt(n))
        self.b = nn.Parameter(torch.zeros(m))
        ls = INIT_LOG_SIGMA - (0.5 * math.log(2.0) if family == "mn-diag" else 0.0)
        if family == "diag":
            self.log_sigma = nn.Parameter(torch.full((n, m), ls))
        if family in ("mn", "mn-diag"):
            self.A = nn.Parameter(torch.diag(torch.full((n,), ls / 2)))
            self.B = nn.Parameter(torch.diag(torch.full((m,), ls / 2)))
        if family == "mn-diag":
            self.log_d = nn.Parameter(torch.full((n, m), 2 * ls))

    def factors(self):
        """Everything a step needs from the variational parameters, built once per step and used
        by both the noise and the KL."""
        f = self.family
        if f == "point":
            return {}
        if f == "diag":
            return {"var": torch.exp(2 * self.log_sigma)}
        A, B = chol(self.A), chol(self.B)
        out = {"A": A, "B": B, "u": (A * A).sum(1), "v": (B * B).sum(1)}
        if f == "mn-diag":
            out["D"] = torch.exp(self.log_d)
        return out

    def kl(self, fc):
        f, M2 = self.family, self.M * self.M
        if f == "point":
            return None
        if f == "diag":
            return 0.5 * torch.log1p(M2 / fc["var"]).sum()
        u, v = fc["u"], fc["v"]
        la, lb = torch.diagonal(self.A).sum(), torch.diagonal(self.B).sum()
        n, m = self.n, self.m
        if f == "mn":
            return 0.5 * torch.log1p(M2 / torch.outer(u, v)).sum() + 0.5 * (
                m * (torch.log(u).sum() - 2 * la) + n * (torch.log(v).sum() - 2 * lb))
        N = float(n * m)
        ld1, ld2 = 2 * m * la + 2 * n * lb, self.log_d.sum()
        lbound = N * torch.logsumexp(torch.stack((ld1 / N, ld2 / N)), 0)
        return 0.5 * torch.log(M2 + torch.outer(u, v) + fc["D"]).sum() - 0.5 * lbound

    @torch.no_grad()
    def log_alpha(self):
        f = self.family
        if f == "point":
            return torch.full_like(self.M, -math.inf)
        fc = self.factors()
        var = fc["var"] if f == "diag" else torch.outer(fc["u"], fc["v"])
        if f == "mn-diag":
            var = var + fc["D"]
        return torch.log(var) - torch.log(torch.clamp_min(self.M * self.M, VAR_FLOOR))

    def dense(self, x, fc, sample):
        """Dense layer on rows x (R, n)."""
        mean = torch.addmm(self.b, x, self.M)
        f = self.family
        if not sample or f == "point":
            return mean
        if f == "diag":
            return mean + sqrt0(torch.mm(x * x, fc["var"])) * torch.randn_like(mean)
        s = torch.linalg.vector_norm(torch.mm(x, fc["A"]), dim=1, keepdim=True)
        y = torch.addmm(mean, s * torch.randn_like(mean), fc["B"].t())  # s (eps B^T)
        if f == "mn-diag":
            y = y + sqrt0(torch.mm(x * x, fc["D"])) * torch.randn_like(mean)
        return y


class MLP(nn.Module):
    """Dense layers with ELU between them."""

    def __init__(self, sizes, family):
        super().__init__()
        self.layers = nn.ModuleList(Weight(a, b, family) for a, b in zip(sizes[:-1], sizes[1:]))

    def forward(self, x, sample=True):
        """Returns (logits, KL or None); sample=False: the mean network, no KL."""
        kl = None
        for k, w in enumerate(self.layers):
            fc = w.factors() if sample else {}
            x = w.dense(x, fc, sample)
            if sample:
                k_ = w.kl(fc)
                if k_ is not None:
                    kl = k_ if kl is None else kl + k_
            if k + 1 < len(self.layers):
                x = F.elu(x)
        return x, kl

    def weights(self):
        return list(self.layers)


class Conv(nn.Module):
    """3x3 convolution, stride 1, same padding, c_in -> c_out, kronvi's LRT per output position."""

    def __init__(self, cin, cout, family):
        super().__init__()
        self.cin, self.cout = cin, cout
        self.w = Weight(9 * cin, cout, family)

    def filters(self, W):  # (9 c_in, k) -> k filters (k, c_in, 3, 3)
        return W.t().reshape(W.shape[1], self.cin, 3, 3)

    def forward(self, x, fc, sample):
        w, f = self.w, self.w.family
        mean = F.conv2d(x, self.filters(w.M), w.b, padding=1)
        if not sample or f == "point":
            return mean
        if f == "diag":
            sd = sqrt0(F.conv2d(x * x, self.filters(fc["var"]), padding=1))
            return mean + sd * randn_as(mean)
        PA = F.conv2d(x, self.filters(fc["A"]), padding=1)  # (B, n, H, W)
        s = torch.linalg.vector_norm(PA, dim=1, keepdim=True)
        noise = F.conv2d(randn_as(mean), fc["B"].reshape(self.cout, self.cout, 1, 1))
        y = mean + s * noise
        if f == "mn-diag":
            sd = sqrt0(F.conv2d(x * x, self.filters(fc["D"]), padding=1))
            y = y + sd * randn_as(mean)
        return y


class CNN(nn.Module):
    """arch like kronvi's: 1-10-mp-20-mp-40-mp-80-mp-flatten-10 (3x3 convolutions with ELU, 2x2
    max-pooling, then dense layers). ELU is applied after a following max-pooling (the same
    result: ELU is increasing), on 4x fewer numbers."""

    def __init__(self, arch, family, side=28, channels_last=False):
        super().__init__()
        tok = arch.split("-")
        c = int(tok[0])
        plan, convs = [], []
        i = 1
        while tok[i] != "flatten":
            if tok[i] == "mp":
                plan.append("mp")
                side //= 2
            else:
                convs.append(Conv(c, int(tok[i]), family))
                c = int(tok[i])
                plan.append("conv")
            i += 1
        self.cin0 = int(tok[0])
        self.plan = plan
        self.convs = nn.ModuleList(convs)
        self.mlp = MLP([c * side * side] + [int(t) for t in tok[i + 1:]], family)
        self.channels_last = channels_last

    def forward(self, x, sample=True):
        B = x.shape[0]
        side = int(math.isqrt(x.shape[1] // self.cin0))
        if self.channels_last:  # HWC rows are NHWC: a channels_last view, no copy
            x = x.view(B, side, side, self.cin0).permute(0, 3, 1, 2)
            if self.cin0 == 1:  # strides that torch recognizes as channels_last
                x = x.contiguous().to(memory_format=torch.channels_last)
        else:  # plain NCHW (with one channel a view with NCHW strides: C = 1 strides are
            # ambiguous, and a conv would pick channels_last and then randn_like would be slow)
            x = (x.view(B, 1, side, side) if self.cin0 == 1 else
                 x.view(B, side, side, self.cin0).permute(0, 3, 1, 2).contiguous())
        kl, ci, k = None, 0, 0
        while k < len(self.plan):
            conv = self.convs[ci]
            fc = conv.w.factors() if sample else {}
            x = conv(x, fc, sample)
            if sample:
                k_ = conv.w.kl(fc)
                if k_ is not None:
                    kl = k_ if kl is None else kl + k_
            ci, k = ci + 1, k + 1
            while k < len(self.plan) and self.plan[k] == "mp":
                x = F.max_pool2d(x, 2)
                k += 1
            x = F.elu(x)
        # flatten in kronvi's HWC order, so the dense rows match the checkpoint layout
        y, kl2 = self.mlp(x.permute(0, 2, 3, 1).reshape(B, -1), sample)
        if kl2 is not None:
            kl = kl2 if kl is None else kl + kl2
        return y, kl

    def weights(self):
        return [c.w for c in self.convs] + self.mlp.weights()


def build(arch, family, channels_last=False):
    if "flatten" in arch or "mp" in arch:
        return CNN(arch, family, channels_last=channels_last)
    return MLP([int(s) for s in arch.split("-")], family)


@torch.no_grad()
def accuracy(net, X, Y, batch=1000):
    """Test accuracy of the mean network."""
    correct = 0
    for i in range(0, X.shape[0], batch):
        out, _ = net(X[i:i + batch], sample=False)
        correct += int((out.argmax(1) == Y[i:i + batch]).sum())
    return correct / X.shape[0]


@torch.no_grad()
def pruned_accuracy(net, X, Y, threshold=3.0, batch=1000):
    """Accuracy of the mean network with the weights of log alpha > threshold set to zero; returns
    (accuracy, fraction of weights pruned). The means are restored afterwards."""
    saved, dropped, total = [], 0, 0
    for w in net.weights():
        mask = w.log_alpha() > threshold
        saved.append(w.M.detach().clone())
        w.M.masked_fill_(mask, 0.0)
        dropped += int(mask.sum())
        total += mask.numel()
    acc = accuracy(net, X, Y, batch)
    for w, m in zip(net.weights(), saved):
        w.M.copy_(m)
    return acc, dropped / total


def self_check():
    """The convolutional LRT products against the unfolded (im2col) rows of docs/nn-conv.md, in
    double precision, for NCHW and channels_last inputs; prints the largest differences."""
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(0)
    cin, cout, Bn, H = 4, 5, 3, 6
    n = 9 * cin
    x = torch.randn(Bn, cin, H, H)
    cols = F.unfold(x, 3, padding=1).transpose(1, 2).reshape(-1, n)  # rows (c_in, ky, kx)
    worst = 0.0
    for family in ("diag", "mn", "mn-diag"):
        conv = Conv(cin, cout, family)
        with torch.no_grad():
            for p in conv.parameters():
                p.copy_(0.3 * torch.randn_like(p))
        fc = conv.w.factors()
        for cl in (False, True):
            xx = x.contiguous(memory_format=torch.channels_last) if cl else x
            torch.manual_seed(5)
            y = conv(xx, fc, True)
            torch.manual_seed(5)
            like = F.conv2d(xx, conv.filters(conv.w.M), padding=1)
            e1 = randn_as(like).permute(0, 2, 3, 1).reshape(-1, cout)
            e2 = randn_as(like).permute(0, 2, 3, 1).reshape(-1, cout) if family == "mn-diag" else None
            ref = cols @ conv.w.M + conv.w.b
            if family == "diag":
                ref = ref + torch.sqrt((cols * cols) @ fc["var"]) * e1
            else:
                s = torch.linalg.vector_norm(cols @ fc["A"], dim=1, keepdim=True)
                ref = ref + s * (e1 @ fc["B"].t())
                if family == "mn-diag":
                    ref = ref + torch.sqrt((cols * cols) @ fc["D"]) * e2
            d = float((y - ref.reshape(Bn, H, H, cout).permute(0, 3, 1, 2)).abs().max())
            worst = max(worst, d)
            print(f"{family:8s} {'channels_last' if cl else 'NCHW':13s} max |conv - im2col| = {d:.2e}")
    torch.set_default_dtype(torch.float32)
    return worst < 1e-10


if __name__ == "__main__":
    import sys

    sys.exit(0 if self_check() else 1)
