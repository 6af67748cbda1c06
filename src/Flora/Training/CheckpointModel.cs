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
    private CheckpointModel(IBackend backend, CheckpointInfo info, string directory, ByteLevelBpe tokenizer, LanguageModel model, IReadOnlyList<string> notes)
    {
        (Backend, Info, Directory, Tokenizer, Model, Notes) = (backend, info, directory, tokenizer, model, notes);
    }

    /// <summary>One-line notes for the user, such as an older checkpoint loaded without checksums.</summary>
    public IReadOnlyList<string> Notes { get; }

    public IBackend Backend { get; }
    public CheckpointInfo Info { get; }
    /// <summary>The checkpoint directory (run/checkpoints/step-N).</summary>
    public string Directory { get; }
    public ByteLevelBpe Tokenizer { get; }
    public LanguageModel Model { get; }
    public TrainOptions Options => Info.Options;

    /// <summary>
    /// Opens a run directory (its latest checkpoint) or a checkpoint directory on <paramref name="device"/>: its
    /// checksums are checked, and weights holding NaN or infinities are refused. A checkpoint copied out of its run
    /// finds its tokenizer in its own directory.
    /// </summary>
    public static CheckpointModel Open(string path, string device = "cpu", string precision = "bf16")
    {
        string directory = TrainingCheckpoint.Resolve(path);
        var info = TrainingCheckpoint.ReadInfo(directory);
        string run = TrainingCheckpoint.RunDirectoryOf(directory) ?? directory;
        var notes = new List<string>();
        var (tokenizer, identity) = TokenizerSetup.ForCheckpoint(info.Options, run);
        if (identity != info.TokenizerHash)
            throw new InvalidDataException($"{directory}: the tokenizer in {run} is not the one this checkpoint was trained with");
        var backend = BackendFactory.Create(device, precision: precision);
        try
        {
            var o = info.Options;
            LanguageModel model;
            using (WeightStorage.Use(o.WeightType(null)))                             // the weight type the run recorded
                model = ModelFactory.Create(o.Model, backend, o.ModelVocabulary(tokenizer.VocabularySize), o.Seed, 0f, RunLayout.LoraAdapter(o), o.SequenceLength);
            try
            {
                TrainingCheckpoint.LoadWeights(directory, model, notes);
            }
            catch
            {
                model.Dispose();
                throw;
            }
            return new CheckpointModel(backend, info, directory, tokenizer, model, notes);
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
