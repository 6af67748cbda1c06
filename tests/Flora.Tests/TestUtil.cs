using Flora.Backends;
using Flora.Backends.Cpu;
using Flora.Tensors;

namespace Flora.Tests;

/// <summary>Helpers shared by the tests: a backend, random tensors from a fixed seed, host copies.</summary>
internal static class TestUtil
{
    public static CpuBackend Cpu() => new(new MemoryLedger());

    /// <summary>A tensor of the given shape filled with N(0, std^2) from <paramref name="seed"/>.</summary>
    public static Tensor Random(IBackend backend, ulong seed, float std, params int[] shape)
    {
        var t = backend.Allocate(new Shape(shape), MemoryTag.Activations);
        backend.FillGaussian(t, seed, std);
        return t;
    }

    public static Tensor FromArray(IBackend backend, float[] values, params int[] shape)
    {
        var t = backend.Allocate(new Shape(shape), MemoryTag.Activations);
        backend.Upload(values, t);
        return t;
    }

    public static Tensor Labels(IBackend backend, params int[] labels)
    {
        var t = backend.Allocate(new Shape(labels.Length), MemoryTag.Activations, DType.Int32);
        backend.Upload(labels, t);
        return t;
    }

    public static float[] ToArray(Tensor t) => t.ToArray();

    /// <summary>Token ids (B, T), Int32, uniform in [0, vocabulary) from <paramref name="seed"/>.</summary>
    public static Tensor Ids(IBackend backend, int b, int t, int vocabulary, int seed)
    {
        var rng = new Random(seed);
        var ids = backend.Allocate(new Shape(b, t), MemoryTag.Activations, DType.Int32);
        backend.Upload(Enumerable.Range(0, b * t).Select(_ => rng.Next(vocabulary)).ToArray(), ids);
        return ids;
    }

    /// <summary>
    /// One forward and backward of <paramref name="model"/> on B x T random ids with a random logit gradient (fixed
    /// seeds): the logits, every parameter's gradient and the activation bytes the backend's ledger holds after.
    /// </summary>
    public static (float[] Logits, float[][] Grads, long Activations) ForwardBackward(IBackend backend, Flora.Nn.Models.LanguageModel model, int b, int t)
    {
        using var ids = Ids(backend, b, t, model.Vocabulary, 5);
        Tensor y = model.Forward(ids);
        float[] logits = ToArray(y);
        using var dy = Random(backend, 9, 1, y.Shape.ToArray());
        var sink = new Flora.Optim.AccumulateSink(backend, new Flora.Optim.Sgd(backend, model.Parameters(), 1f));
        model.Backward(dy, sink);
        float[][] grads = model.Parameters().Select(p => ToArray(p.Grad!)).ToArray();
        return (logits, grads, backend.Ledger.Current(MemoryTag.Activations));
    }

    public static double Dot(float[] a, float[] b)
    {
        double s = 0;
        for (int i = 0; i < a.Length; i++) s += (double)a[i] * b[i];
        return s;
    }

    /// <summary>Row-major (m, k) x (k, n) in double, for reference results.</summary>
    public static double[] MatMulReference(float[] a, float[] b, int m, int k, int n, bool ta, bool tb)
    {
        var c = new double[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double s = 0;
                for (int p = 0; p < k; p++)
                {
                    double x = ta ? a[p * m + i] : a[i * k + p];
                    double y = tb ? b[j * k + p] : b[p * n + j];
                    s += x * y;
                }
                c[i * n + j] = s;
            }
        return c;
    }

    /// <summary>The repository's root (the folder holding Flora.sln), found from the test binaries upwards.</summary>
    public static string RepositoryRoot { get; } = FindRepositoryRoot();

    /// <summary>The repository's data/gpt2 (GPT-2's encoder.json.gz and vocab.bpe.gz).</summary>
    public static string Gpt2Directory => Path.Combine(RepositoryRoot, "data", "gpt2");

    private static string FindRepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Flora.sln"))) return dir.FullName;
        throw new InvalidOperationException($"no Flora.sln above {AppContext.BaseDirectory}");
    }
}
