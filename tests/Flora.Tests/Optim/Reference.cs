namespace Flora.Tests.Optim;

/// <summary>
/// Scalar reference implementations of the optimizers, in double precision, written from the
/// update equations (torch.optim.SGD / AdamW, the official Adafactor/FLORA code) and independent of
/// the library's kernels. Matrices are row-major double arrays.
/// </summary>
internal static class Reference
{
    public static double Rms(double[] x) => Math.Sqrt(x.Sum(v => v * v) / x.Length);

    public sealed class Sgd(double lr, double momentum, bool nesterov, double wd)
    {
        private double[]? _buf;
        public void Step(double[] w, double[] g0)
        {
            var g = (double[])g0.Clone();
            for (int i = 0; i < g.Length; i++) g[i] += wd * w[i];
            if (momentum > 0)
            {
                if (_buf is null) _buf = (double[])g.Clone();
                else for (int i = 0; i < g.Length; i++) _buf[i] = momentum * _buf[i] + g[i];
                for (int i = 0; i < g.Length; i++) g[i] = nesterov ? g[i] + momentum * _buf[i] : _buf[i];
            }
            for (int i = 0; i < w.Length; i++) w[i] -= lr * g[i];
        }
    }

    public sealed class AdamW(double lr, double b1, double b2, double eps, double wd)
    {
        private double[]? _m, _v;
        private int _t;
        public void Step(double[] w, double[] g)
        {
            _m ??= new double[g.Length];
            _v ??= new double[g.Length];
            _t++;
            for (int i = 0; i < g.Length; i++)
            {
                _m[i] = b1 * _m[i] + (1 - b1) * g[i];
                _v[i] = b2 * _v[i] + (1 - b2) * g[i] * g[i];
                double mHat = _m[i] / (1 - Math.Pow(b1, _t));
                double denom = Math.Sqrt(_v[i]) / Math.Sqrt(1 - Math.Pow(b2, _t)) + eps;
                w[i] = w[i] * (1 - lr * wd) - lr * mHat / denom;
            }
        }
    }

    /// <summary>Adafactor as the official code computes it; <c>project</c>, when set, replaces the preconditioned update u (FLORA with beta = 0).</summary>
    public sealed class Adafactor(int n, int m)
    {
        public double? Lr = 1;
        public double Eps1 = 1e-30, Eps2 = 1e-3, Clip = 1, Decay = -0.8, Wd = 0;
        public bool ScaleParameter = true, RelativeStep, WarmupInit, Factored = true;
        public double? Beta1;
        public Func<int, double[], double[]>? Project;
        private double[]? _r, _c, _v, _m;
        private int _t;

        public void Step(double[] w, double[] g)
        {
            _t++;
            double rel = RelativeStep ? Math.Min(WarmupInit ? 1e-6 * _t : 1e-2, 1 / Math.Sqrt(_t)) : Lr!.Value;
            double lr = rel * (ScaleParameter ? Math.Max(Eps2, Rms(w)) : 1);
            double b2 = 1 - Math.Pow(_t, Decay);
            var u = new double[g.Length];
            if (Factored)
            {
                _r ??= new double[n];
                _c ??= new double[m];
                for (int i = 0; i < n; i++)
                {
                    double s = 0;
                    for (int j = 0; j < m; j++) s += g[i * m + j] * g[i * m + j] + Eps1;
                    _r[i] = b2 * _r[i] + (1 - b2) * s / m;
                }
                for (int j = 0; j < m; j++)
                {
                    double s = 0;
                    for (int i = 0; i < n; i++) s += g[i * m + j] * g[i * m + j] + Eps1;
                    _c[j] = b2 * _c[j] + (1 - b2) * s / n;
                }
                double meanR = _r.Average();
                for (int i = 0; i < n; i++)
                    for (int j = 0; j < m; j++)
                        u[i * m + j] = g[i * m + j] / Math.Sqrt(_r[i] / meanR * _c[j]);
            }
            else
            {
                _v ??= new double[g.Length];
                for (int i = 0; i < g.Length; i++)
                {
                    _v[i] = b2 * _v[i] + (1 - b2) * (g[i] * g[i] + Eps1);
                    u[i] = g[i] / Math.Sqrt(_v[i]);
                }
            }
            if (Project is not null) u = Project(_t - 1, u);
            if (Beta1 is double beta)
            {
                _m ??= new double[g.Length];
                for (int i = 0; i < u.Length; i++) u[i] = _m[i] = beta * _m[i] + (1 - beta) * u[i];
            }
            double clip = Math.Max(1, Rms(u) / Clip);
            for (int i = 0; i < w.Length; i++) w[i] = w[i] * (1 - Wd * lr) - lr * u[i] / clip;
        }
    }

    /// <summary>(a b) for row-major a (p, q) and b (q, s).</summary>
    public static double[] MatMul(double[] a, double[] b, int p, int q, int s)
    {
        var c = new double[p * s];
        for (int i = 0; i < p; i++)
            for (int k = 0; k < q; k++)
                for (int j = 0; j < s; j++)
                    c[i * s + j] += a[i * q + k] * b[k * s + j];
        return c;
    }

    public static double[] Transpose(double[] a, int p, int q)
    {
        var t = new double[p * q];
        for (int i = 0; i < p; i++)
            for (int j = 0; j < q; j++)
                t[j * p + i] = a[i * q + j];
        return t;
    }

    /// <summary>A (r, d) of the library's projections: Philox Gaussians of <paramref name="seed"/> times 1/sqrt(r), rounded as the library rounds.</summary>
    public static double[] Projection(ulong seed, int r, int d)
    {
        var a = new double[r * d];
        float scale = 1f / MathF.Sqrt(r);
        for (int i = 0; i < a.Length; i++) a[i] = scale * Flora.Backends.Philox.Gaussian(seed, i);
        return a;
    }
}
