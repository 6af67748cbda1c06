using System.Globalization;
using System.Text;

namespace Flora.Reporting;

/// <summary>
/// Stacked bars as a standalone SVG: one bar per category (a training configuration), one segment per
/// layer (a memory tag), stacked in the order the layers were added, the first at the bottom, with each
/// bar's total above it. Same palette and escaping as <see cref="SvgLineChart"/>.
/// </summary>
public sealed class SvgStackedBarChart
{
    private const string FontFamily = "Helvetica, Arial, DejaVu Sans, sans-serif";
    private readonly string[] _categories;
    private readonly List<(string Name, double[] Values, int Colour)> _layers = new();

    /// <summary>Starts a chart with one bar per entry of <paramref name="categories"/>, left to right, and no layers yet.</summary>
    /// <exception cref="ArgumentException"><paramref name="categories"/> is empty.</exception>
    public SvgStackedBarChart(string title, string yLabel, IReadOnlyList<string> categories)
    {
        Title = title ?? throw new ArgumentNullException(nameof(title));
        YLabel = yLabel ?? throw new ArgumentNullException(nameof(yLabel));
        _categories = categories.ToArray();
        if (_categories.Length == 0) throw new ArgumentException("a bar chart needs at least one category", nameof(categories));
    }

    /// <summary>The bold line above the bars, also the SVG document's &lt;title&gt;.</summary>
    public string Title { get; }

    /// <summary>The label beside the Y axis (e.g. "MiB").</summary>
    public string YLabel { get; }

    /// <summary>A small grey line under the title; null or empty for none.</summary>
    public string? Subtitle { get; set; }

    /// <summary>Adds a segment to every bar (one value per category); <paramref name="colour"/> is a palette index.</summary>
    public void AddLayer(string name, IReadOnlyList<double> values, int? colour = null)
    {
        if (values.Count != _categories.Length) throw new ArgumentException($"layer '{name}' has {values.Count} values for {_categories.Length} categories", nameof(values));
        if (values.Any(v => !(v >= 0) || double.IsInfinity(v))) throw new ArgumentException($"layer '{name}': values must be finite and non-negative", nameof(values));
        _layers.Add((name, values.ToArray(), colour ?? _layers.Count));
    }

    /// <summary>
    /// Renders the chart as a complete SVG document of <paramref name="width"/> × <paramref name="height"/> pixels:
    /// the bars with their totals above them, the category names slanted below, the legend on the right.
    /// </summary>
    public string ToSvg(int width = 900, int height = 460)
    {
        int n = _categories.Length;
        double[] totals = Enumerable.Range(0, n).Select(c => _layers.Sum(l => l.Values[c])).ToArray();
        const double plotTop = 52, legendRow = 17;
        double legendWidth = _layers.Count == 0 ? 0 : _layers.Max(l => SvgLineChart.TextWidth(l.Name, 11)) + 36;
        double labelRoom = Math.Min(120, _categories.Max(c => SvgLineChart.TextWidth(c, 11)) * 0.75 + 20);
        double plotBottom = height - labelRoom;
        var yAxis = ChartAxis.Linear(0, Math.Max(1e-12, totals.Max()), 0, null, Math.Max(2, (int)((plotBottom - plotTop) / 45)));
        double plotLeft = 30 + yAxis.Labels.Max(l => SvgLineChart.TextWidth(l, 11)) + 8;
        double plotRight = width - 24 - legendWidth;
        double slot = (plotRight - plotLeft) / n, barWidth = slot * 0.6;
        double Py(double y) => plotBottom - yAxis.Fraction(y) * (plotBottom - plotTop);

        var svg = new StringBuilder();
        svg.Append("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        svg.Append($"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"{FontFamily}\">\n");
        svg.Append($"<title>{SvgLineChart.Escape(Title)}</title>\n<rect width=\"{width}\" height=\"{height}\" fill=\"#ffffff\"/>\n");
        svg.Append($"<text x=\"{N((plotLeft + plotRight) / 2)}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\" fill=\"#222222\">{SvgLineChart.Escape(Title)}</text>\n");
        if (!string.IsNullOrEmpty(Subtitle))
            svg.Append($"<text x=\"{N((plotLeft + plotRight) / 2)}\" y=\"40\" text-anchor=\"middle\" font-size=\"11\" fill=\"#666666\">{SvgLineChart.Escape(Subtitle)}</text>\n");
        svg.Append("<g class=\"grid\" shape-rendering=\"crispEdges\" font-size=\"11\" fill=\"#444444\" text-anchor=\"end\">\n");
        for (int i = 0; i < yAxis.Ticks.Length; i++)
        {
            double y = Py(yAxis.Ticks[i]);
            svg.Append($"<line x1=\"{N(plotLeft)}\" x2=\"{N(plotRight)}\" y1=\"{N(y)}\" y2=\"{N(y)}\" stroke=\"#e4e4e4\"/>\n");
            svg.Append($"<text x=\"{N(plotLeft - 6)}\" y=\"{N(y + 4)}\">{SvgLineChart.Escape(yAxis.Labels[i])}</text>\n");
        }
        svg.Append("</g>\n");
        double cy = (plotTop + plotBottom) / 2;
        svg.Append($"<text x=\"18\" y=\"{N(cy)}\" transform=\"rotate(-90 18 {N(cy)})\" text-anchor=\"middle\" font-size=\"12\" fill=\"#222222\">{SvgLineChart.Escape(YLabel)}</text>\n");

        svg.Append("<g class=\"bars\">\n");
        for (int c = 0; c < n; c++)
        {
            double x = plotLeft + c * slot + (slot - barWidth) / 2, below = 0;
            foreach (var (name, values, colour) in _layers)
            {
                double v = values[c];
                if (v <= 0) continue;
                string fill = SvgLineChart.Style(colour).Colour;
                svg.Append($"<rect x=\"{N(x)}\" y=\"{N(Py(below + v))}\" width=\"{N(barWidth)}\" height=\"{N(Py(below) - Py(below + v))}\" fill=\"{fill}\">");
                svg.Append($"<title>{SvgLineChart.Escape($"{_categories[c]}: {name} {v.ToString("0.###", CultureInfo.InvariantCulture)}")}</title></rect>\n");
                below += v;
            }
            svg.Append($"<text x=\"{N(x + barWidth / 2)}\" y=\"{N(Py(totals[c]) - 4)}\" text-anchor=\"middle\" font-size=\"10\" fill=\"#222222\">{totals[c].ToString("0.##", CultureInfo.InvariantCulture)}</text>\n");
            double lx = x + barWidth / 2, ly = plotBottom + 12;
            svg.Append($"<text x=\"{N(lx)}\" y=\"{N(ly)}\" text-anchor=\"end\" font-size=\"11\" fill=\"#222222\" transform=\"rotate(-35 {N(lx)} {N(ly)})\">{SvgLineChart.Escape(_categories[c])}</text>\n");
        }
        svg.Append($"<line x1=\"{N(plotLeft)}\" x2=\"{N(plotRight)}\" y1=\"{N(plotBottom)}\" y2=\"{N(plotBottom)}\" stroke=\"#808080\"/>\n</g>\n");

        double gx = plotRight + 16;
        svg.Append($"<g class=\"legend\" font-size=\"11\" fill=\"#222222\">\n<rect x=\"{N(gx)}\" y=\"{N(plotTop)}\" width=\"{N(legendWidth)}\" height=\"{N(_layers.Count * legendRow + 10)}\" fill=\"#ffffff\" stroke=\"#d0d0d0\" rx=\"3\"/>\n");
        for (int k = _layers.Count - 1, row = 0; k >= 0; k--, row++)
        {
            double ry = plotTop + 5 + row * legendRow + legendRow / 2;
            svg.Append($"<rect x=\"{N(gx + 8)}\" y=\"{N(ry - 5)}\" width=\"14\" height=\"10\" fill=\"{SvgLineChart.Style(_layers[k].Colour).Colour}\"/>\n");
            svg.Append($"<text x=\"{N(gx + 28)}\" y=\"{N(ry + 4)}\">{SvgLineChart.Escape(_layers[k].Name)}</text>\n");
        }
        svg.Append("</g>\n</svg>\n");
        return svg.ToString();
    }

    private static string N(double v)
    {
        string s = Math.Round(v, 2).ToString("0.##", CultureInfo.InvariantCulture);
        return s == "-0" ? "0" : s;
    }
}
