// Fine-tuning with LoRA, then merging the adapters. A small GPT-2 is first trained on Genesis..Isaiah bytes of the
// embedded corpus (standing in for a pretrained model); a copy with LoRA adapters (rank 4) on every attention and
// feed-forward projection then learns the New Testament with only its adapters trained (the common fine-tuning
// practice; the FLORA paper's LoRA baseline also trains embeddings and norms). Merging folds B A into each weight:
// the held-out loss must not change, and a plain model (no adapters) loading the merged weights gives it too.
//
//   dotnet run --project examples/LoraFineTune [-- DIRECTORY]
using System.Text;
using Flora.Backends;
using Flora.Data.Corpora;
using Flora.Devices;
using Flora.Nn;
using Flora.Nn.Models;
using Flora.Optim;
using Flora.Tensors;

const int Batch = 8, Length = 32;
var config = new Gpt2Config(Layers: 2, Heads: 4, Embed: 64, Vocabulary: 256, Context: Length);
string directory = args.Length > 0 ? args[0] : Path.Combine(Path.GetTempPath(), "flora-lora-example");
Directory.CreateDirectory(directory);
string corpus = EmbeddedCorpus.Load().Train;
int newTestament = corpus.IndexOf("The book of the genealogy of Jesus Christ", StringComparison.Ordinal);   // Matthew 1:1
if (newTestament < 0) newTestament = corpus.Length / 2;
byte[] pretrainText = Encoding.UTF8.GetBytes(corpus[..newTestament]);
byte[] fineTuneText = Encoding.UTF8.GetBytes(corpus[newTestament..]);

using IBackend backend = BackendFactory.Create("cpu");
using var ids = backend.Allocate(new Shape(Batch, Length), MemoryTag.Activations, DType.Int32);
using var targets = backend.Allocate(new Shape(Batch, Length), MemoryTag.Activations, DType.Int32);

// 1. "Pretraining": every weight, AdamW.
string baseWeights = Path.Combine(directory, "base.safetensors");
using (var pretrained = new Gpt2(backend, config, seed: 1))
{
    using var adamw = new AdamW(pretrained.Parameters(), learningRate: 3e-3f, weightDecay: 0f);
    Train(pretrained, adamw, pretrainText, steps: 60);
    pretrained.SaveWeights(baseWeights);
}

// 2. LoRA: the same model with adapters around each projection; the base weights load, the adapters keep their start.
using var model = new Gpt2(backend, config, seed: 1, adapt: linear => new LoraLinear(linear, rank: 4, alpha: 8f, seed: Seeds.ForName(7, linear.Name)));
model.LoadWeights(baseWeights, mayBeMissing: p => LoraLinear.IsAdapter(p.Name));
foreach (var p in model.Parameters()) p.RequiresGrad = LoraLinear.IsAdapter(p.Name);
var adapters = model.Parameters().Where(p => p.RequiresGrad).ToArray();
double before = HeldOutLoss(model);
using (var optimizer = new AdamW(adapters, learningRate: 1e-2f, weightDecay: 0f)) Train(model, optimizer, fineTuneText, steps: 60);
double tuned = HeldOutLoss(model);
Console.WriteLine($"held-out loss on the New Testament: {before:F4} before fine-tuning, {tuned:F4} after ({adapters.Length} adapter tensors trained, {adapters.Sum(p => (long)p.Value.Count):N0} of {model.ParameterCount:N0} parameters)");

// 3. Merge W += s B A into every wrapped projection; export without the adapters; reload into a plain model.
foreach (var lora in model.Modules().OfType<LoraLinear>()) lora.Merge();
double merged = HeldOutLoss(model);
string mergedWeights = Path.Combine(directory, "merged.safetensors");
model.SaveWeights(mergedWeights, include: p => !LoraLinear.IsAdapter(p.Name));
using var plain = new Gpt2(backend, config, seed: 99);
plain.LoadWeights(mergedWeights);
double reloaded = HeldOutLoss(plain);
Console.WriteLine($"after merging: {merged:F4}; a plain GPT-2 with the merged weights ({mergedWeights}): {reloaded:F4}");
bool ok = tuned < before && Math.Abs(merged - tuned) < 1e-4 && Math.Abs(reloaded - tuned) < 1e-4;
Console.WriteLine(ok ? "merge keeps the fine-tuned model: yes" : "merge keeps the fine-tuned model: NO");
return ok ? 0 : 1;

void Train(Gpt2 network, Optimizer optimizer, byte[] text, int steps)
{
    for (int step = 0; step < steps; step++)
    {
        LoadBatch(text, step, ids, targets);
        network.ForwardLoss(ids, targets);
        network.BackwardLoss(optimizer.Gradients);
        optimizer.Step();
    }
}

double HeldOutLoss(Gpt2 network)
{
    double sum = 0;
    for (int b = 0; b < 8; b++)
    {
        LoadBatch(fineTuneText, 100_000 + b, ids, targets);
        sum += network.ForwardLoss(ids, targets);
    }
    return sum / 8;
}

static void LoadBatch(byte[] text, int b, Tensor ids, Tensor targets)
{
    int batch = ids.Shape[0], length = ids.Shape[1];
    var x = new int[batch * length];
    var y = new int[batch * length];
    for (int row = 0; row < batch; row++)
    {
        int start = (int)((b * batch + row) * 2654435761L % (text.Length - length - 1));
        for (int t = 0; t < length; t++)
        {
            x[row * length + t] = text[start + t];
            y[row * length + t] = text[start + t + 1];
        }
    }
    ids.CopyFrom<int>(x);
    targets.CopyFrom<int>(y);
}
