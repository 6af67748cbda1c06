using System.Globalization;
using System.Text;

namespace Flora.Reporting;

/// <summary>
/// A stacked-area chart as a standalone SVG (a memory profile: one band per category over time): the layers
/// share one X series and are stacked in the order added, the first at the bottom. With <see cref="Steps"/>
/// a value holds until the next X (the bytes held after one allocation stay until the next one). Vertical
/// dashed markers label moments (step starts, the peak). Several charts can be laid out as panels of one
/// document with <see cref="Combine"/>. Colours come from <see cref="SvgLineChart"/>'s palette; text is
/// XML-escaped and numbers use the invariant culture.
/// </summary>
public sealed class SvgStackedAreaChart
{
    private const string FontFamily = "Helvetica, Arial, DejaVu Sans, sans-serif";
    private const double TitleSize = 15, SubtitleSize = 11, AxisLabelSize = 12, TickSize = 11, LegendSize = 11, LegendRow = 17;

    private readonly List<(string Name, double[] Values, int Colour)> _layers = new();
    private readonly List<(double X, string Label)> _markers = new();
    private double[] _x = [];

    /// <summary>Starts an empty chart; no argument may be null (an empty label leaves its room out).</summary>
    public SvgStackedAreaChart(string title, string xLabel, string yLabel)
    {
        Title = title ?? throw new ArgumentNullException(nameof(title));
        XLabel = xLabel ?? throw new ArgumentNullException(nameof(xLabel));
        YLabel = yLabel ?? throw new ArgumentNullException(nameof(yLabel));
    }

    /// <summary>The bold line above the plot, also the SVG document's &lt;title&gt;.</summary>
    public string Title { get; }

    /// <summary>The label under the X axis (e.g. "seconds"); empty leaves no room for it.</summary>
    public string XLabel { get; }

    /// <summary>The label beside the Y axis (e.g. "MiB"); empty leaves no room for it.</summary>
    public string YLabel { get; }

    /// <summary>A small grey line under the title (for example the configuration); null or empty for none.</summary>
    public string? Subtitle { get; set; }

    /// <summary>Fixed top of the Y axis (to give several panels one scale); null follows the data.</summary>
    public double? YMax { get; set; }

    /// <summary>Hold each value until the next X (true, the default) instead of joining points by straight lines.</summary>
    public bool Steps { get; set; } = true;

    /// <summary>Points drawn at most per layer; longer series keep, from each run of points, the one of the largest total (so the peak survives).</summary>
    public int MaxPoints { get; set; } = 3000;

    /// <summary>Prefix of the element ids, distinct per chart when several share one document.</summary>
    public string IdPrefix { get; set; } = "stack";

    /// <summary>The X values shared by all layers, non-decreasing.</summary>
    public void SetX(IReadOnlyList<double> x)
    {
        ArgumentNullException.ThrowIfNull(x);
        for (int i = 1; i < x.Count; i++)
            if (!(x[i] >= x[i - 1])) throw new ArgumentException($"X values must be finite and non-decreasing: x[{i}] = {x[i]} after {x[i - 1]}", nameof(x));
        if (_layers.Count > 0 && _layers[0].Values.Length != x.Count) throw new ArgumentException($"{x.Count} X values for layers of {_layers[0].Values.Length}", nameof(x));
        _x = x.ToArray();
    }

    /// <summary>Adds a layer on top of the others; <paramref name="colour"/> is a palette index (default: the layer's number).</summary>
    public void AddLayer(string name, IReadOnlyList<double> values, int? colour = null)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(values);
        if (values.Count != _x.Length) throw new ArgumentException($"layer '{name}' has {values.Count} values for {_x.Length} X values; call SetX first", nameof(values));
        if (values.Any(v => !(v >= 0) || double.IsInfinity(v))) throw new ArgumentException($"layer '{name}': values must be finite and non-negative", nameof(values));
        _layers.Add((name, values.ToArray(), colour ?? _layers.Count));
    }

    /// <summary>A vertical dashed line at <paramref name="x"/> with a short label at its top.</summary>
    public void AddMarker(double x, string label) => _markers.Add((x, label ?? ""));

    /// <summary>Renders the chart as a complete SVG document.</summary>
    public string ToSvg(int width = 800, int height = 420)
    {
        var svg = new StringBuilder();
        svg.Append("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        AppendSvgElement(svg, 0, 0, width, height);
        return svg.ToString();
    }

    /// <summary>
    /// Lays out charts as panels of one SVG, <paramref name="columns"/> to a row, under a common title. Each
    /// chart should have its own <see cref="IdPrefix"/>.
    /// </summary>
    public static string Combine(string title, IReadOnlyList<SvgStackedAreaChart> panels, int columns, int panelWidth = 520, int panelHeight = 360)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(columns);
        if (panels.Select(p => p.IdPrefix).Distinct().Count() != panels.Count) throw new ArgumentException("every panel needs its own IdPrefix");
        int rows = (panels.Count + columns - 1) / columns;
        const int top = 36;
        int width = columns * panelWidth, height = top + rows * panelHeight;
        var svg = new StringBuilder();
        svg.Append("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        svg.Append($"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"{FontFamily}\">\n");
        svg.Append($"<title>{SvgLineChart.Escape(title)}</title>\n<rect width=\"{width}\" height=\"{height}\" fill=\"#ffffff\"/>\n");
        svg.Append($"<text x=\"{N(width / 2.0)}\" y=\"24\" text-anchor=\"middle\" font-size=\"17\" font-weight=\"bold\" fill=\"#222222\">{SvgLineChart.Escape(title)}</text>\n");
        for (int i = 0; i < panels.Count; i++)
            panels[i].AppendSvgElement(svg, i % columns * panelWidth, top + i / columns * panelHeight, panelWidth, panelHeight);
        svg.Append("</svg>\n");
        return svg.ToString();
    }

    /// <summary>Writes one &lt;svg&gt; element at (x0, y0) of the given size (the root element when x0 = y0 = 0).</summary>
    private void AppendSvgElement(StringBuilder svg, double x0, double y0, int width, int height)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 240);
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 160);
        int[] kept = Downsample();
        int n = kept.Length;
        // cumulative tops: top[k][i] = sum of layers 0..k at kept point i
        var top = new double[_layers.Count][];
        for (int k = 0; k < _layers.Count; k++)
        {
            top[k] = new double[n];
            for (int i = 0; i < n; i++) top[k][i] = (k > 0 ? top[k - 1][i] : 0) + _layers[k].Values[kept[i]];
        }
        double yHi = _layers.Count == 0 || n == 0 ? 1 : top[^1].Max();
        double xLo = n == 0 ? 0 : _x[kept[0]], xHi = n == 0 ? 1 : _x[kept[^1]];

        // layout: title, plot, legend on the right
        double titleBaseline = 8 + TitleSize, plotTop = titleBaseline + (string.IsNullOrEmpty(Subtitle) ? 14 : SubtitleSize + 18);
        double legendWidth = _layers.Count == 0 ? 0 : _layers.Max(l => SvgLineChart.TextWidth(l.Name, LegendSize)) + 36;
        double plotBottom = height - 24 - (XLabel.Length > 0 ? AxisLabelSize + 8 : 0);
        double plotHeight = plotBottom - plotTop;
        var yAxis = ChartAxis.Linear(0, yHi, 0, YMax, Math.Max(2, (int)(plotHeight / 45)));
        double plotLeft = (YLabel.Length > 0 ? AxisLabelSize + 18 : 10) + yAxis.Labels.Max(l => SvgLineChart.TextWidth(l, TickSize)) + 8;
        double plotRight = width - 14 - (legendWidth > 0 ? legendWidth + 12 : 0);
        double plotWidth = plotRight - plotLeft;
        var xAxis = ChartAxis.Linear(xLo, xHi, xLo, xHi > xLo ? xHi : null, Math.Max(2, (int)(plotWidth / 90)));
        double Px(double x) => plotLeft + Math.Clamp(xAxis.Fraction(x), 0, 1) * plotWidth;
        double Py(double y) => plotBottom - Math.Clamp(yAxis.Fraction(y), 0, 1.02) * plotHeight;

        svg.Append($"<svg x=\"{N(x0)}\" y=\"{N(y0)}\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\"");
        svg.Append(x0 == 0 && y0 == 0 ? $" xmlns=\"http://www.w3.org/2000/svg\" font-family=\"{FontFamily}\">\n" : ">\n");
        svg.Append($"<title>{SvgLineChart.Escape(Title)}</title>\n");
        svg.Append($"<defs><clipPath id=\"{IdPrefix}-plot\"><rect x=\"{N(plotLeft)}\" y=\"{N(plotTop)}\" width=\"{N(plotWidth)}\" height=\"{N(plotHeight)}\"/></clipPath></defs>\n");
        svg.Append($"<rect width=\"{width}\" height=\"{height}\" fill=\"#ffffff\"/>\n");
        svg.Append($"<text class=\"title\" x=\"{N(plotLeft + plotWidth / 2)}\" y=\"{N(titleBaseline)}\" text-anchor=\"middle\" font-size=\"{N(TitleSize)}\" font-weight=\"bold\" fill=\"#222222\">{SvgLineChart.Escape(Title)}</text>\n");
        if (!string.IsNullOrEmpty(Subtitle))
            svg.Append($"<text class=\"subtitle\" x=\"{N(plotLeft + plotWidth / 2)}\" y=\"{N(titleBaseline + SubtitleSize + 6)}\" text-anchor=\"middle\" font-size=\"{N(SubtitleSize)}\" fill=\"#666666\">{SvgLineChart.Escape(Subtitle)}</text>\n");

        // grid and ticks
        svg.Append("<g class=\"grid\" shape-rendering=\"crispEdges\">\n");
        foreach (double v in yAxis.Ticks)
            svg.Append($"<line x1=\"{N(plotLeft)}\" x2=\"{N(plotRight)}\" y1=\"{N(Py(v))}\" y2=\"{N(Py(v))}\" stroke=\"#e4e4e4\"/>\n");
        svg.Append($"<rect x=\"{N(plotLeft)}\" y=\"{N(plotTop)}\" width=\"{N(plotWidth)}\" height=\"{N(plotHeight)}\" fill=\"none\" stroke=\"#b0b0b0\"/>\n</g>\n");
        svg.Append($"<g class=\"y-ticks\" font-size=\"{N(TickSize)}\" fill=\"#444444\" text-anchor=\"end\">\n");
        for (int i = 0; i < yAxis.Ticks.Length; i++)
            svg.Append($"<text x=\"{N(plotLeft - 6)}\" y=\"{N(Py(yAxis.Ticks[i]) + TickSize * 0.35)}\">{SvgLineChart.Escape(yAxis.Labels[i])}</text>\n");
        svg.Append($"</g>\n<g class=\"x-ticks\" font-size=\"{N(TickSize)}\" fill=\"#444444\" text-anchor=\"middle\">\n");
        for (int i = 0; i < xAxis.Ticks.Length; i++)
            svg.Append($"<text x=\"{N(Px(xAxis.Ticks[i]))}\" y=\"{N(plotBottom + 16)}\">{SvgLineChart.Escape(xAxis.Labels[i])}</text>\n");
        svg.Append("</g>\n");
        if (XLabel.Length > 0)
            svg.Append($"<text class=\"x-label\" x=\"{N(plotLeft + plotWidth / 2)}\" y=\"{N(plotBottom + 18 + AxisLabelSize)}\" text-anchor=\"middle\" font-size=\"{N(AxisLabelSize)}\" fill=\"#222222\">{SvgLineChart.Escape(XLabel)}</text>\n");
        if (YLabel.Length > 0)
        {
            double cy = plotTop + plotHeight / 2, lx = 6 + AxisLabelSize;
            svg.Append($"<text class=\"y-label\" x=\"{N(lx)}\" y=\"{N(cy)}\" transform=\"rotate(-90 {N(lx)} {N(cy)})\" text-anchor=\"middle\" font-size=\"{N(AxisLabelSize)}\" fill=\"#222222\">{SvgLineChart.Escape(YLabel)}</text>\n");
        }

        // bands: the top edge of layer k left to right, then the top edge of layer k - 1 (or the axis) right to left
        svg.Append($"<g class=\"layers\" clip-path=\"url(#{IdPrefix}-plot)\" stroke=\"none\">\n");
        for (int k = 0; k < _layers.Count && n > 0; k++)
        {
            var (colour, _) = SvgLineChart.Style(_layers[k].Colour);
            var points = new List<string>();
            foreach (var (x, y) in Edge(kept, top[k])) points.Add($"{N(Px(x))},{N(Py(y))}");
            var lower = k > 0 ? Edge(kept, top[k - 1]) : Edge(kept, new double[n]);
            for (int i = lower.Count - 1; i >= 0; i--) points.Add($"{N(Px(lower[i].X))},{N(Py(lower[i].Y))}");
            svg.Append($"<polygon fill=\"{colour}\" fill-opacity=\"0.85\" points=\"{string.Join(' ', points)}\"><title>{SvgLineChart.Escape(_layers[k].Name)}</title></polygon>\n");
        }
        svg.Append("</g>\n");

        // markers; a label that would overlap an earlier one goes one row lower
        svg.Append($"<g class=\"markers\" font-size=\"10\" fill=\"#333333\">\n");
        var rowEnds = new List<double>();
        foreach (var (x, label) in _markers.OrderBy(m => m.X))
        {
            if (x < xLo || x > xHi) continue;
            double px = Px(x), w = SvgLineChart.TextWidth(label, 10);
            bool left = px + 3 + w > plotRight;                                   // near the right edge: label on the left of the line
            double start = left ? px - 3 - w : px + 3;
            int row = rowEnds.FindIndex(end => end < start);
            if (row < 0) { row = rowEnds.Count; rowEnds.Add(0); }
            rowEnds[row] = start + w;
            svg.Append($"<line x1=\"{N(px)}\" x2=\"{N(px)}\" y1=\"{N(plotTop)}\" y2=\"{N(plotBottom)}\" stroke=\"#333333\" stroke-dasharray=\"3 3\" stroke-width=\"0.8\"/>\n");
            svg.Append($"<text x=\"{N(start)}\" y=\"{N(plotTop + 11 + 11 * row)}\">{SvgLineChart.Escape(label)}</text>\n");
        }
        svg.Append("</g>\n");

        // legend: the top band first, as the bands are stacked
        if (_layers.Count > 0)
        {
            double lx = plotRight + 12, ly = plotTop;
            svg.Append($"<g class=\"legend\" font-size=\"{N(LegendSize)}\" fill=\"#222222\">\n");
            svg.Append($"<rect x=\"{N(lx)}\" y=\"{N(ly)}\" width=\"{N(legendWidth)}\" height=\"{N(_layers.Count * LegendRow + 10)}\" fill=\"#ffffff\" stroke=\"#d0d0d0\" rx=\"3\"/>\n");
            for (int k = _layers.Count - 1, row = 0; k >= 0; k--, row++)
            {
                var (colour, _) = SvgLineChart.Style(_layers[k].Colour);
                double cy = ly + 5 + row * LegendRow + LegendRow / 2;
                svg.Append($"<rect x=\"{N(lx + 8)}\" y=\"{N(cy - 5)}\" width=\"14\" height=\"10\" fill=\"{colour}\"/>\n");
                svg.Append($"<text x=\"{N(lx + 28)}\" y=\"{N(cy + LegendSize * 0.35)}\">{SvgLineChart.Escape(_layers[k].Name)}</text>\n");
            }
            svg.Append("</g>\n");
        }
        svg.Append("</svg>\n");
    }

    /// <summary>The outline of one cumulative series: steps (each value held until the next X) or straight segments.</summary>
    private List<(double X, double Y)> Edge(int[] kept, double[] y)
    {
        var edge = new List<(double X, double Y)>(2 * kept.Length);
        for (int i = 0; i < kept.Length; i++)
        {
            edge.Add((_x[kept[i]], y[i]));
            if (Steps && i + 1 < kept.Length) edge.Add((_x[kept[i + 1]], y[i]));
        }
        return edge;
    }

    /// <summary>Indices of the points to draw: all of them, or from each run of points the one with the largest total.</summary>
    private int[] Downsample()
    {
        int n = _x.Length;
        if (n <= MaxPoints) return Enumerable.Range(0, n).ToArray();
        double Total(int i) => _layers.Sum(l => l.Values[i]);
        int run = (n + MaxPoints - 1) / MaxPoints;
        var kept = new List<int>();
        for (int start = 0; start < n; start += run)
        {
            int best = start;
            for (int i = start + 1; i < Math.Min(n, start + run); i++) if (Total(i) > Total(best)) best = i;
            kept.Add(best);
        }
        if (kept[0] != 0) kept.Insert(0, 0);
        if (kept[^1] != n - 1) kept.Add(n - 1);
        return kept.ToArray();
    }

    private static string N(double v)
    {
        string s = Math.Round(v, 2).ToString("0.##", CultureInfo.InvariantCulture);
        return s == "-0" ? "0" : s;
    }
}
