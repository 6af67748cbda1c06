// The same kind of loop on an NVIDIA GPU: FLORA on AdamW (FloraAdamW, rank 16) with LOMO, where each parameter is
// updated inside backward so no gradient outlives its layer. The model and the first batch also run on the CPU, and
// the two first losses must agree. Without a CUDA driver the example says so and exits with 0.
//
//   dotnet run --project examples/CudaLoop
using System.Text;
using Flora;
using Flora.Backends;
using Flora.Data.Corpora;
using Flora.Devices;
using Flora.Nn.Models;
using Flora.Optim;
using Flora.Tensors;

const int Batch = 8, Length = 64, Steps = 30;
IBackend gpu;
try
{
    gpu = BackendFactory.Create("cuda", precision: "bf16");
}
catch (FloraException e)
{
    Console.WriteLine($"no CUDA GPU here, skipped: {e.Message}");
    return 0;
}
byte[] text = Encoding.UTF8.GetBytes(EmbeddedCorpus.Load().Train[..200_000]);
var config = new Gpt2Config(Layers: 4, Heads: 4, Embed: 128, Vocabulary: 256, Context: Length);

using (gpu)
{
    double cpuFirst = FirstLoss(BackendFactory.Create("cpu"));
    using var model = new Gpt2(gpu, config, seed: 1);
    using var optimizer = new FloraAdamW(model.Parameters(), learningRate: 3e-3f, rank: 16, weightDecay: 0f)
    {
        GradientOptions = new PipelineOptions { Lomo = true },
    };
    using var ids = gpu.Allocate(new Shape(Batch, Length), MemoryTag.Activations, DType.Int32);
    using var targets = gpu.Allocate(new Shape(Batch, Length), MemoryTag.Activations, DType.Int32);
    var losses = new List<double>();
    for (int step = 0; step < Steps; step++)
    {
        LoadBatch(step, ids, targets);
        losses.Add(model.ForwardLoss(ids, targets));
        model.BackwardLoss(optimizer.Gradients);       // LOMO: each parameter is updated as its gradient arrives
        optimizer.Step();
    }
    gpu.Synchronize();
    Console.WriteLine($"{gpu.Name}: loss {losses[0]:F4} -> {losses[^1]:F4} in {Steps} steps; first loss on the CPU {cpuFirst:F4}");
    Console.WriteLine($"peak GPU memory on the ledger: {gpu.Ledger.PeakTotal / 1048576.0:F1} MiB");
    bool ok = Math.Abs(losses[0] - cpuFirst) < 2e-2 && losses[^1] < losses[0];
    return ok ? 0 : 1;
}

double FirstLoss(IBackend cpu)
{
    using (cpu)
    {
        using var model = new Gpt2(cpu, config, seed: 1);
        using var ids = cpu.Allocate(new Shape(Batch, Length), MemoryTag.Activations, DType.Int32);
        using var targets = cpu.Allocate(new Shape(Batch, Length), MemoryTag.Activations, DType.Int32);
        LoadBatch(0, ids, targets);
        return model.ForwardLoss(ids, targets);
    }
}

void LoadBatch(int b, Tensor ids, Tensor targets)
{
    var x = new int[Batch * Length];
    var y = new int[Batch * Length];
    for (int row = 0; row < Batch; row++)
    {
        int start = (int)((b * Batch + row) * 2654435761L % (text.Length - Length - 1));
        for (int t = 0; t < Length; t++)
        {
            x[row * Length + t] = text[start + t];
            y[row * Length + t] = text[start + t + 1];
        }
    }
    ids.CopyFrom<int>(x);
    targets.CopyFrom<int>(y);
}
