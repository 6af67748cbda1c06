using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Flora.Reporting;

namespace Flora.Training;

/// <summary>One row of a training log; validation fields only at evaluation steps.</summary>
internal sealed record TrainMetrics(long Step, double TrainLoss, double LearningRate, double TokensPerSecond, double? ValidationLoss, double ElapsedSeconds)
{
    public double? ValidationPerplexity => ValidationLoss is double v ? Math.Exp(v) : null;
}

/// <summary>
/// metrics.csv and metrics.jsonl of a run (the same snake_case names in both, as Hugging Face's Trainer logs), one row per step, flushed as they are written so a crash
/// loses nothing already logged. On resume, rows after the checkpoint's step are dropped first.
/// </summary>
internal sealed class MetricsLog : IDisposable
{
    public const string CsvFile = "metrics.csv", JsonFile = "metrics.jsonl";
    private const string Header = "step,train_loss,learning_rate,tokens_per_second,val_loss,val_perplexity,elapsed_seconds";
    private readonly StreamWriter _csv, _json;
    /// <summary>A diverged run's perplexity is infinite: written as "Infinity", never an exception that loses the step.</summary>
    private static readonly JsonSerializerOptions JsonOptions = new() { NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals };
    private readonly List<TrainMetrics> _rows = new();

    public MetricsLog(string directory, long resumeStep)
    {
        string csvPath = Path.Combine(directory, CsvFile), jsonPath = Path.Combine(directory, JsonFile);
        var kept = resumeStep > 0 && File.Exists(csvPath) ? ReadCsv(csvPath).Where(r => r.Step <= resumeStep).ToList() : new List<TrainMetrics>();
        _rows.AddRange(kept);
        _csv = new StreamWriter(csvPath, append: false);
        _json = new StreamWriter(jsonPath, append: false);
        _csv.WriteLine(Header);
        foreach (var row in kept) Write(row, remember: false);
        _csv.Flush();
        _json.Flush();
    }

    public IReadOnlyList<TrainMetrics> Rows => _rows;

    public void Add(TrainMetrics row) => Write(row, remember: true);

    private void Write(TrainMetrics r, bool remember)
    {
        if (remember) _rows.Add(r);
        string F(double? v) => v is double d ? d.ToString("R", CultureInfo.InvariantCulture) : "";
        _csv.WriteLine(string.Join(',', r.Step.ToString(CultureInfo.InvariantCulture), F(r.TrainLoss), F(r.LearningRate), F(r.TokensPerSecond),
            F(r.ValidationLoss), F(r.ValidationPerplexity), F(r.ElapsedSeconds)));
        _json.WriteLine(JsonSerializer.Serialize(new
        {
            step = r.Step, train_loss = r.TrainLoss, learning_rate = r.LearningRate, tokens_per_second = r.TokensPerSecond,
            val_loss = r.ValidationLoss, val_perplexity = r.ValidationPerplexity, elapsed_seconds = r.ElapsedSeconds,
        }, JsonOptions));
        _csv.Flush();
        _json.Flush();
    }

    /// <summary>Reads a metrics.csv written by this class.</summary>
    public static List<TrainMetrics> ReadCsv(string path)
    {
        var rows = new List<TrainMetrics>();
        foreach (string line in File.ReadLines(path).Skip(1))
        {
            string[] f = line.Split(',');
            if (f.Length != 7 || !long.TryParse(f[0], CultureInfo.InvariantCulture, out long step)) continue;   // a torn last line
            double P(string s) => double.Parse(s, CultureInfo.InvariantCulture);
            rows.Add(new TrainMetrics(step, P(f[1]), P(f[2]), P(f[3]), f[4].Length == 0 ? null : P(f[4]), P(f[6])));
        }
        return rows;
    }

    /// <summary>loss.svg: the training loss (mean of the last 20 steps) and the validation loss against step.</summary>
    public SvgLineChart Chart(string title)
    {
        var chart = new SvgLineChart(title, "step", "loss (nats per token)") { Subtitle = "training loss: mean of the last 20 steps; validation loss at evaluation steps" };
        var train = new List<(double X, double Y)>();
        double sum = 0;
        for (int i = 0; i < _rows.Count; i++)
        {
            sum += _rows[i].TrainLoss;
            if (i >= 20) sum -= _rows[i - 20].TrainLoss;
            train.Add((_rows[i].Step, sum / Math.Min(i + 1, 20)));
        }
        chart.AddSeries("training", train);
        chart.AddSeries("validation", _rows.Where(r => r.ValidationLoss is not null).Select(r => ((double)r.Step, r.ValidationLoss!.Value)).ToList());
        return chart;
    }

    public void Dispose()
    {
        _csv.Dispose();
        _json.Dispose();
    }
}
