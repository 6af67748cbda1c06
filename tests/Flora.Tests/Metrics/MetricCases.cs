using System.Text.Json;

namespace Flora.Tests.Metrics;

/// <summary>
/// The shared case table <c>Metrics/metric_cases.json</c>: inputs written by hand, expected values produced by
/// <c>bench/metrics_reference.py --update</c> with SacreBLEU 2.4.0, then 2.6.0 (BLEU and sentence BLEU), and rouge-score's scorer (NLTK 3.8's Porter
/// stemmer); the same script re-checks them against whatever sacrebleu / rouge_score is installed.
/// </summary>
internal static class MetricCases
{
    public static readonly string Directory = Path.Combine(AppContext.BaseDirectory, "Metrics");

    private static readonly Lazy<JsonElement> Root = new(() =>
    {
        using var document = JsonDocument.Parse(File.ReadAllText(Path.Combine(Directory, "metric_cases.json")));
        return document.RootElement.Clone();
    });

    public static IEnumerable<JsonElement> Section(string name) => Root.Value.GetProperty(name).EnumerateArray();

    public static string[] Strings(JsonElement array) => array.EnumerateArray().Select(e => e.GetString()!).ToArray();

    public static double[] Doubles(JsonElement array) => array.EnumerateArray().Select(e => e.GetDouble()).ToArray();

    public static long[] Longs(JsonElement array) => array.EnumerateArray().Select(e => e.GetInt64()).ToArray();
}
