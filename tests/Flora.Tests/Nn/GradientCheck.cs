using Flora.Backends;
using Flora.Nn;
using Flora.Optim;
using Flora.Tensors;
using Flora.Training;

namespace Flora.Tests.Nn;

/// <summary>
/// Finite-difference gradient check of a module: L = sum(y * R) for a fixed random R, so
/// dL/dy = R. Every input element and every parameter element (up to a sample of each) is perturbed
/// by +-eps and the central difference is compared with the analytic gradient:
/// |numeric - analytic| &lt;= tol (1 + |analytic|). In float32 with eps = 1e-2 the central difference
/// of a smooth function is accurate to about 1e-3 relative, so tol = 1e-2 passes right answers and
/// fails wrong ones (a wrong gradient is off by O(1)).
/// </summary>
internal static class GradientCheck
{
    public static void Run(IBackend backend, Module module, Tensor input, float eps = 1e-2f, double tol = 1e-2, int maxChecksPerTensor = 60)
    {
        using var loss = new LinearLoss(backend, module, input);
        var grads = new AccumulateSink(backend, new Sgd(backend, module.Parameters(), 1f));
        Tensor y = module.Forward(input);
        Tensor? dx = module.Backward(loss.R, grads);

        var rng = new Random(1234);
        if (module.ComputesInputGradient)
        {
            Assert.NotNull(dx);
            Compare("input", input, TestUtil.ToArray(dx!), loss, eps, tol, rng, maxChecksPerTensor);
        }
        foreach (var p in module.Parameters().Where(p => p.RequiresGrad))
        {
            Assert.True(p.Grad is not null, $"{p.Name} got no gradient");
            Compare(p.Name, p.Value, TestUtil.ToArray(p.Grad!), loss, eps, tol, rng, maxChecksPerTensor);
        }
        foreach (var p in module.Parameters().Where(p => !p.RequiresGrad))
            Assert.True(p.Grad is null, $"frozen {p.Name} got a gradient buffer");
    }

    private static void Compare(string what, Tensor x, float[] analytic, LinearLoss loss, float eps, double tol, Random rng, int maxChecks)
    {
        float[] values = TestUtil.ToArray(x);
        IEnumerable<int> indices = values.Length <= maxChecks
            ? Enumerable.Range(0, values.Length)
            : Enumerable.Range(0, maxChecks).Select(_ => rng.Next(values.Length));
        foreach (int i in indices)
        {
            float original = values[i];
            values[i] = original + eps; x.CopyFrom<float>(values);
            double plus = loss.Evaluate();
            values[i] = original - eps; x.CopyFrom<float>(values);
            double minus = loss.Evaluate();
            values[i] = original; x.CopyFrom<float>(values);
            double numeric = (plus - minus) / (2 * eps);
            double error = Math.Abs(numeric - analytic[i]);
            Assert.True(error <= tol * (1 + Math.Abs(analytic[i])),
                $"{what}[{i}]: analytic {analytic[i]:G6}, finite difference {numeric:G6}");
        }
    }

    /// <summary>L(y) = sum(y * R) with R fixed N(0, 1).</summary>
    private sealed class LinearLoss : IDisposable
    {
        private readonly Module _module;
        private readonly Tensor _input;
        private readonly float[] _r;

        public LinearLoss(IBackend backend, Module module, Tensor input)
        {
            _module = module;
            _input = input;
            Tensor y = module.Forward(input);
            R = backend.Allocate(y.Shape, MemoryTag.Activations);
            backend.FillGaussian(R, 99, 1f);
            _r = TestUtil.ToArray(R);
        }

        public Tensor R { get; }

        public double Evaluate() => TestUtil.Dot(TestUtil.ToArray(_module.Forward(_input)), _r);

        public void Dispose() => R.Dispose();
    }
}
