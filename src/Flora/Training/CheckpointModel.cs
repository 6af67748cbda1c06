using Flora.Devices;
using Flora.Backends;
using Flora.Data.Tokenizers;
using Flora.Nn;
using Flora.Nn.Models;

namespace Flora.Training;

/// <summary>
/// A trained model ready to use: a checkpoint's weights in the model its options describe, on a backend, with
/// the tokenizer it was trained with (a different tokenizer in the run directory is an error, not a silent
/// mismatch). For generation and evaluation; training resumes through <see cref="Trainer"/>.
/// </summary>
public sealed class CheckpointModel : IDisposable
{
    private CheckpointModel(IBackend backend, CheckpointInfo info, string directory, ByteLevelBpe tokenizer, LanguageModel model)
    {
        (Backend, Info, Directory, Tokenizer, Model) = (backend, info, directory, tokenizer, model);
    }

    public IBackend Backend { get; }
    public CheckpointInfo Info { get; }
    /// <summary>The checkpoint directory (run/checkpoints/step-N).</summary>
    public string Directory { get; }
    public ByteLevelBpe Tokenizer { get; }
    public LanguageModel Model { get; }
    public TrainOptions Options => Info.Options;

    /// <summary>Opens a run directory (its latest checkpoint) or a checkpoint directory on <paramref name="device"/>.</summary>
    public static CheckpointModel Open(string path, string device = "cpu", string precision = "bf16")
    {
        string directory = TrainingCheckpoint.Resolve(path);
        var info = TrainingCheckpoint.ReadInfo(directory);
        string run = Trainer.RunDirectoryOf(directory);
        var (tokenizer, identity) = TokenizerSetup.ForCheckpoint(info.Options, run);
        if (identity != info.TokenizerHash)
            throw new InvalidDataException($"{directory}: the tokenizer in {run} is not the one this checkpoint was trained with");
        var backend = BackendFactory.Create(device, precision: precision);
        try
        {
            var o = info.Options;
            LanguageModel model;
            using (WeightStorage.Use(o.WeightType(null)))                             // the weight type the run recorded
                model = ModelFactory.Create(o.Model, backend, o.ModelVocabulary(tokenizer.VocabularySize), o.Seed, 0f,
                    o.LoraRank > 0 ? l => new LoraLinear(l, Math.Min(o.LoraRank, Math.Min(l.InFeatures, l.OutFeatures)), o.LoraAlpha, 0) : null, o.SequenceLength);
            try
            {
                TrainingCheckpoint.LoadWeights(directory, model);
            }
            catch
            {
                model.Dispose();
                throw;
            }
            return new CheckpointModel(backend, info, directory, tokenizer, model);
        }
        catch
        {
            backend.Dispose();
            throw;
        }
    }

    /// <summary>The translation template of the run (its truncation lengths, the model's layout and context).</summary>
    public TranslationTemplate TranslationTemplate => Trainer.TranslationTemplateOf(Options, Tokenizer, Model);

    public void Dispose()
    {
        Model.Dispose();
        Backend.Dispose();
    }
}
