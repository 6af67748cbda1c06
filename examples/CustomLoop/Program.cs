// A training loop of your own with FLORA: a small GPT-2 learns the bytes of the embedded English corpus with
// FLORA's compressed momentum (Adafactor base, rank 8) and compressed gradient accumulation (Algorithm 1, 4
// micro-batches per update). Halfway it saves the weights and the optimizer state; a second model and optimizer
// then load them and train the second half again. The two second halves must agree bit for bit.
//
//   dotnet run --project examples/CustomLoop [-- DIRECTORY]
using System.Text;
using Flora.Backends;
using Flora.Data.Corpora;
using Flora.Devices;
using Flora.Nn.Models;
using Flora.Optim;
using Flora.Tensors;

const int Batch = 4, Length = 32, MicroBatches = 4, Steps = 16, SaveAt = 8;
string directory = args.Length > 0 ? args[0] : Path.Combine(Path.GetTempPath(), "flora-custom-loop");
Directory.CreateDirectory(directory);
byte[] text = Encoding.UTF8.GetBytes(EmbeddedCorpus.Load().Train[..100_000]);

double[] whole = Train(firstStep: 0, lastStep: Steps, resume: false);
double[] resumed = Train(firstStep: SaveAt, lastStep: Steps, resume: true);
double[] secondHalf = whole[SaveAt..];
for (int i = 0; i < secondHalf.Length; i++)
    Console.WriteLine($"step {SaveAt + i + 1,2}: loss {secondHalf[i]:F6}  resumed {resumed[i]:F6}");
bool same = secondHalf.SequenceEqual(resumed);
Console.WriteLine($"loss {whole[0]:F3} -> {whole[^1]:F3}; resumed run identical: {(same ? "yes" : "NO")}");
return same && whole[^1] < whole[0] ? 0 : 1;

// Trains steps (firstStep, lastStep]; saves the run at SaveAt, or starts from that save.
double[] Train(int firstStep, int lastStep, bool resume)
{
    using IBackend backend = BackendFactory.Create("cpu");
    using var model = new Gpt2(backend, new Gpt2Config(Layers: 2, Heads: 4, Embed: 64, Vocabulary: 256, Context: Length), seed: 1);
    using var optimizer = new FloraAdafactor(model.Parameters(), learningRate: 0.02f, rank: 8, kappa: 5, seed: 2)
    {
        GradientOptions = new PipelineOptions { Mode = AccumulationMode.Compressed, AccumulationSteps = MicroBatches, Rank = 8, Seed = 3 },
    };
    if (resume)
    {
        model.LoadWeights(Path.Combine(directory, "model.safetensors"));
        optimizer.LoadState(Path.Combine(directory, "optimizer.safetensors"));
    }
    using var ids = backend.Allocate(new Shape(Batch, Length), MemoryTag.Activations, DType.Int32);
    using var targets = backend.Allocate(new Shape(Batch, Length), MemoryTag.Activations, DType.Int32);
    var losses = new List<double>();
    for (int step = firstStep; step < lastStep; step++)
    {
        double loss = 0;
        for (int micro = 0; micro < MicroBatches; micro++)
        {
            LoadBatch(step * MicroBatches + micro, ids, targets);
            loss += model.ForwardLoss(ids, targets, optimizer.Gradients) / MicroBatches;   // the loss's gradients from the same pass
            model.BackwardLoss(optimizer.Gradients);      // gradients are compressed as backward produces them
            optimizer.Step();                              // every 4th call decompresses the mean and updates
        }
        losses.Add(loss);
        if (step + 1 == SaveAt && !resume)
        {
            model.SaveWeights(Path.Combine(directory, "model.safetensors"));
            optimizer.SaveState(Path.Combine(directory, "optimizer.safetensors"));
        }
    }
    return [.. losses];
}

// Batch number b: Batch windows of the text at fixed pseudo-random offsets; targets are the next bytes.
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
