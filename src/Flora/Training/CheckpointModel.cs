using Flora.Devices;
using Flora.Backends;
using Flora.Data.Tokenizers;
using Flora.Nn;
using Flora.Nn.Models;
using Flora.Nn.Models.HuggingFace;

namespace Flora.Training;

/// <summary>
/// A trained model ready to use: a checkpoint's weights in the model its options describe, on a backend, with
/// the tokenizer it was trained with (a different tokenizer in the run directory is an error, not a silent
/// mismatch), or a Hugging Face model directory with its tokenizer. For generation, evaluation and export;
/// training resumes through <see cref="Trainer"/>.
/// </summary>
public sealed class CheckpointModel : IDisposable
{
    private readonly Lazy<ITokenizer> _tokenizer;

    private CheckpointModel(IBackend backend, CheckpointInfo info, string directory, Lazy<ITokenizer> tokenizer, LanguageModel model, IReadOnlyList<string> notes,
        bool huggingFace = false)
    {
        (Backend, Info, Directory, _tokenizer, Model, Notes, IsHuggingFace) = (backend, info, directory, tokenizer, model, notes, huggingFace);
    }

    /// <summary>One-line notes for the user, such as an older checkpoint loaded without checksums.</summary>
    public IReadOnlyList<string> Notes { get; }

    /// <summary>The backend the model lives on, owned by this object.</summary>
    public IBackend Backend { get; }
    /// <summary>What the checkpoint says about its run (step 0 and default options for a Hugging Face directory).</summary>
    public CheckpointInfo Info { get; }
    /// <summary>The checkpoint directory (run/checkpoints/step-N), or the Hugging Face model directory.</summary>
    public string Directory { get; }

    /// <summary>Whether <see cref="Directory"/> is a Hugging Face model directory rather than a training checkpoint.</summary>
    public bool IsHuggingFace { get; }

    /// <summary>Where outputs about this model go by default: the run directory, or runs/NAME for a Hugging Face directory.</summary>
    public string RunDirectory => IsHuggingFace ? Path.Combine("runs", Path.GetFileName(Directory)) : TrainingCheckpoint.RunDirectoryOf(Directory) ?? Directory;

    /// <summary>The directory the tokenizer's files are in (Hugging Face layout) when the model uses a Hugging Face tokenizer.</summary>
    public string? HuggingFaceTokenizerDirectory =>
        IsHuggingFace ? Directory : Options.Tokenizer == TokenizerSetup.HuggingFace ? Path.Combine(RunDirectory, TokenizerSetup.Directory) : null;
    /// <summary>
    /// The tokenizer. A Hugging Face directory's is read when first asked for, so that a directory without a tokenizer
    /// Flora reads can still be exported; asking for it then throws a <see cref="FloraException"/> that says so.
    /// </summary>
    public ITokenizer Tokenizer => _tokenizer.Value;
    /// <summary>The model with the checkpoint's weights, on <see cref="Backend"/>, owned by this object.</summary>
    public LanguageModel Model { get; }
    /// <summary>The run's options (<see cref="CheckpointInfo.Options"/>).</summary>
    public TrainOptions Options => Info.Options;

    /// <summary>
    /// Opens a run directory (its latest checkpoint), a checkpoint directory or a Hugging Face model directory on
    /// <paramref name="device"/>: a checkpoint's checksums are checked, and weights holding NaN or infinities are
    /// refused. A checkpoint copied out of its run finds its tokenizer in its own directory.
    /// </summary>
    public static CheckpointModel Open(string path, string device = "cpu", string precision = "bf16")
    {
        if (!File.Exists(Path.Combine(path, TrainingCheckpoint.StateFile)) && HfDirectory.IsModelDirectory(path)) return OpenHuggingFace(path, device, precision);
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
                model = o.Model == Trainer.HuggingFaceModel
                    ? HfModelConfig.Read(Path.Combine(directory, TrainingCheckpoint.ConfigFile)).CreateModel(backend, o.Seed, RunLayout.LoraAdapter(o))
                    : ModelFactory.Create(o.Model, backend, o.ModelVocabulary(tokenizer.VocabularySize), o.Seed, 0f, RunLayout.LoraAdapter(o), o.SequenceLength);
            try
            {
                TrainingCheckpoint.LoadWeights(directory, model, notes);
            }
            catch
            {
                model.Dispose();
                throw;
            }
            return new CheckpointModel(backend, info, directory, new Lazy<ITokenizer>(() => tokenizer), model, notes);
        }
        catch
        {
            backend.Dispose();
            throw;
        }
    }

    /// <summary>A Hugging Face model directory with its own tokenizer, as step 0 of a language-modelling "run".</summary>
    private static CheckpointModel OpenHuggingFace(string path, string device, string precision)
    {
        var source = HfDirectory.Open(path);
        var tokenizer = new Lazy<ITokenizer>(() => TokenizerSetup.LoadHuggingFace(source.Path).Tokenizer);
        var backend = BackendFactory.Create(device, precision: precision);
        try
        {
            var model = source.CreateModel(backend);
            var options = new TrainOptions
            {
                Model = Trainer.HuggingFaceModel, Tokenizer = TokenizerSetup.HuggingFace, InitFrom = source.Path,
                SequenceLength = Math.Min(new TrainOptions().SequenceLength, model.MaxSequenceLength), Device = device, Precision = precision,
            };
            var info = new CheckpointInfo(source.Path, 0, new Flora.Data.DataPosition(0, 0), options, model.Describe(), "");
            return new CheckpointModel(backend, info, source.Path, tokenizer, model, [], huggingFace: true);
        }
        catch
        {
            backend.Dispose();
            throw;
        }
    }

    /// <summary>The translation template of the run (its truncation lengths, the model's layout and context).</summary>
    public TranslationTemplate TranslationTemplate => Trainer.TranslationTemplateOf(Options, Tokenizer, Model);

    /// <summary>Frees the model and the backend.</summary>
    public void Dispose()
    {
        Model.Dispose();
        Backend.Dispose();
    }
}
