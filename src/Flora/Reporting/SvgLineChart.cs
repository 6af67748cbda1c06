using System.Globalization;
using System.Text;
using System.Xml;

namespace Flora.Reporting;

/// <summary>
/// A dependency-free line chart written as a standalone SVG file: title, optional subtitle,
/// "nice" ticks (1, 2, 5 × 10^k) with grid lines on both axes, axis labels, one polyline per
/// series clipped to the plot area, and a legend outside the plot (right of it, or below it when
/// the names are long).
/// </summary>
/// <remarks>
/// Series colours come from a fixed colour-blind-friendly palette of eight colours (after
/// Okabe &amp; Ito); the ninth series reuses the first colour with a dashed line, and so on.
/// Points whose X or Y is NaN or infinite are skipped and break the line; with
/// <see cref="LogY"/> so are points with Y ≤ 0 (with <see cref="LogX"/>, X ≤ 0), and the chart says how many were left out.
/// All numbers are written with the invariant culture and all text is XML-escaped.
/// Every point is written out: for very long series consider plotting every n-th point.
/// </remarks>
public sealed class SvgLineChart
{
    /// <summary>Line colours, in the order series get them.</summary>
    internal static readonly string[] Palette =
    {
        "#0072B2", // blue
        "#D55E00", // vermillion
        "#009E73", // bluish green
        "#CC79A7", // reddish purple
        "#E69F00", // orange
        "#56B4E9", // sky blue
        "#555555", // dark grey
        "#A6A00A", // olive (a darker stand-in for Okabe-Ito yellow, which is unreadable on white)
    };

    /// <summary>Dash patterns for the first, second, ... pass through <see cref="Palette"/>.</summary>
    internal static readonly string?[] DashPatterns = { null, "7 4", "2 3", "9 3 2 3" };

    private const string FontFamily = "Helvetica, Arial, DejaVu Sans, sans-serif";
    private const double TitleSize = 16, SubtitleSize = 12, AxisLabelSize = 13, TickSize = 11, LegendSize = 12;
    private const double StrokeWidth = 1.8;
    private const double LegendRow = 18, LegendSample = 24, LegendPad = 10;

    private readonly List<(string Name, (double X, double Y)[] Points, bool Dashed, int? Colour)> _series = new();

    /// <summary>Starts an empty chart.</summary>
    public SvgLineChart(string title, string xLabel, string yLabel)
    {
        Title = title ?? throw new ArgumentNullException(nameof(title));
        XLabel = xLabel ?? throw new ArgumentNullException(nameof(xLabel));
        YLabel = yLabel ?? throw new ArgumentNullException(nameof(yLabel));
    }

    /// <summary>The bold line above the plot, also the SVG document's &lt;title&gt;.</summary>
    public string Title { get; }

    /// <summary>The label under the X axis (units included, e.g. "step").</summary>
    public string XLabel { get; }

    /// <summary>The label beside the Y axis, written vertically.</summary>
    public string YLabel { get; }

    /// <summary>A small grey line under the title (for example the run's settings).</summary>
    public string? Subtitle { get; set; }

    /// <summary>Use a log10 Y axis. Points with Y ≤ 0 cannot be shown and are skipped.</summary>
    public bool LogY { get; set; }

    /// <summary>Use a log10 X axis. Points with X ≤ 0 cannot be shown and are skipped.</summary>
    public bool LogX { get; set; }

    /// <summary>Fixed lower end of the Y axis; null follows the data. Ignored when ≤ 0 with <see cref="LogY"/>.</summary>
    public double? YMin { get; set; }

    /// <summary>Fixed upper end of the Y axis; null follows the data.</summary>
    public double? YMax { get; set; }

    /// <summary>Fixed lower end of the X axis; null follows the data.</summary>
    public double? XMin { get; set; }

    /// <summary>Fixed upper end of the X axis; null follows the data.</summary>
    public double? XMax { get; set; }

    /// <summary>Number of series added so far.</summary>
    public int SeriesCount => _series.Count;

    /// <summary>
    /// Adds a line. The points are copied and drawn in the order given; NaN or infinite points are
    /// skipped and break the line. An empty series still gets a legend entry, marked "(no data)".
    /// A <paramref name="dashed"/> series is drawn dashed, so that a line lying on top of another stays visible.
    /// <paramref name="colour"/>, when given, is the palette index to take the style from instead of the
    /// series' own number, so that related lines (a measurement and its prediction) can share a colour.
    /// </summary>
    public void AddSeries(string name, IReadOnlyList<(double X, double Y)> points, bool dashed = false, int? colour = null)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(points);
        if (colour < 0) throw new ArgumentOutOfRangeException(nameof(colour), colour, "A palette index cannot be negative.");
        _series.Add((name, points.ToArray(), dashed, colour));
    }

    /// <summary>Writes the chart to <paramref name="path"/> atomically (temporary file, then move).</summary>
    public void Save(string path) => AtomicFile.WriteAllText(path, ToSvg());

    /// <summary>Writes the chart at the given size to <paramref name="path"/> atomically.</summary>
    public void Save(string path, int width, int height) => AtomicFile.WriteAllText(path, ToSvg(width, height));

    /// <summary>Renders the chart as a complete SVG document.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The size is below 240 × 160.</exception>
    /// <exception cref="InvalidOperationException">A fixed minimum is above the fixed maximum.</exception>
    public string ToSvg(int width = 800, int height = 480)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 240);
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 160);

        // ---- usable data: split each series at unusable points
        var segments = new List<List<(double X, double Y)>>[_series.Count];
        double xLo = double.PositiveInfinity, xHi = double.NegativeInfinity;
        double yLo = double.PositiveInfinity, yHi = double.NegativeInfinity;
        int nonPositive = 0;
        for (int s = 0; s < _series.Count; s++)
        {
            segments[s] = new List<List<(double X, double Y)>>();
            List<(double X, double Y)>? current = null;
            foreach ((double x, double y) in _series[s].Points)
            {
                bool usable = double.IsFinite(x) && double.IsFinite(y);
                if (usable && ((LogY && y <= 0) || (LogX && x <= 0)))
                {
                    usable = false;
                    nonPositive++;
                }
                if (!usable)
                {
                    current = null;
                    continue;
                }
                if (current is null)
                {
                    current = new List<(double X, double Y)>();
                    segments[s].Add(current);
                }
                current.Add((x, y));
                xLo = Math.Min(xLo, x);
                xHi = Math.Max(xHi, x);
                yLo = Math.Min(yLo, y);
                yHi = Math.Max(yHi, y);
            }
        }
        bool anyData = xLo <= xHi;
        if (!anyData) xLo = xHi = yLo = yHi = double.NaN;

        // ---- vertical layout
        double titleSize = FitFont(Title, TitleSize, width - 24);
        double y0 = 12;
        double titleBaseline = Title.Length > 0 ? y0 + titleSize : y0;
        double subtitleBaseline = string.IsNullOrEmpty(Subtitle) ? titleBaseline : titleBaseline + SubtitleSize + 6;
        double plotTop = subtitleBaseline + (titleBaseline > y0 ? 16 : 8);

        var legendNames = new string[_series.Count];
        for (int s = 0; s < _series.Count; s++)
            legendNames[s] = segments[s].Count == 0 ? _series[s].Name + " (no data)" : _series[s].Name;
        double entryWidth(int s) => LegendSample + 6 + TextWidth(legendNames[s], LegendSize);
        double maxEntry = _series.Count == 0 ? 0 : Enumerable.Range(0, _series.Count).Max(entryWidth);
        double legendRightWidth = maxEntry + 2 * LegendPad;
        double legendRightHeight = _series.Count * LegendRow + 2 * LegendPad - 4;
        double xAxisBlock = 19 + (XLabel.Length > 0 ? 8 + AxisLabelSize + 2 : 0);
        bool legendRight = _series.Count > 0
            && legendRightWidth <= 0.3 * width
            && legendRightHeight <= height - plotTop - xAxisBlock - 12;

        // Legend below: entries flow left to right in rows across the chart width.
        var belowRows = new List<List<int>>();
        if (_series.Count > 0 && !legendRight)
        {
            double available = width - 24 - 2 * LegendPad, used = 0;
            for (int s = 0; s < _series.Count; s++)
            {
                double w = entryWidth(s);
                if (belowRows.Count == 0 || (used > 0 && used + 18 + w > available))
                {
                    belowRows.Add(new List<int>());
                    used = 0;
                }
                used += (used > 0 ? 18 : 0) + w;
                belowRows[^1].Add(s);
            }
        }
        double legendBelowHeight = belowRows.Count == 0 ? 0 : belowRows.Count * LegendRow + 2 * LegendPad - 4;
        double plotBottom = height - 12 - xAxisBlock - (legendBelowHeight > 0 ? legendBelowHeight + 10 : 0);
        plotBottom = Math.Max(plotBottom, plotTop + 40);
        double plotHeight = plotBottom - plotTop;

        // ---- Y axis, which fixes the left margin
        int yTarget = Math.Max(2, (int)(plotHeight / 48));
        ChartAxis yAxis = LogY
            ? ChartAxis.Log(yLo, yHi, YMin, YMax, yTarget)
            : ChartAxis.Linear(yLo, yHi, YMin, YMax, yTarget);
        double yTickWidth = yAxis.Labels.Length == 0 ? 0 : yAxis.Labels.Max(l => TextWidth(l, TickSize));
        double yLabelBaseline = 12 + AxisLabelSize;
        double plotLeft = (YLabel.Length > 0 ? yLabelBaseline + 10 : 12) + yTickWidth + 8;

        // ---- X axis: fewer ticks until the labels do not collide
        double plotRight = legendRight ? width - 12 - legendRightWidth - 16 : width - 20;
        ChartAxis xAxis = null!;
        for (int target = Math.Max(2, (int)((plotRight - plotLeft) / 80)); target >= 1; target--)
        {
            xAxis = LogX
                ? ChartAxis.Log(xLo, xHi, XMin, XMax, target)
                : ChartAxis.Linear(xLo, xHi, XMin, XMax, target);
            double widest = xAxis.Labels.Length == 0 ? 0 : xAxis.Labels.Max(l => TextWidth(l, TickSize));
            double spacing = xAxis.Ticks.Length < 2
                ? double.PositiveInfinity
                : (plotRight - plotLeft) * (xAxis.Fraction(xAxis.Ticks[1]) - xAxis.Fraction(xAxis.Ticks[0]));
            if (!legendRight && xAxis.Labels.Length > 0)
            {
                // Leave room for half of the last label to the right of the plot.
                double overhang = TextWidth(xAxis.Labels[^1], TickSize) / 2 + 6;
                plotRight = Math.Min(width - 20, width - overhang);
            }
            if (spacing >= widest + 12) break;
        }
        double plotWidth = plotRight - plotLeft;

        double Px(double x) => Clamp(plotLeft + xAxis.Fraction(x) * plotWidth);
        double Py(double y) => Clamp(plotBottom - yAxis.Fraction(y) * plotHeight);

        // ---- document
        var svg = new StringBuilder(4096 + _series.Sum(s => s.Points.Length) * 16);
        svg.Append("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        svg.Append($"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"{FontFamily}\">\n");
        svg.Append($"<title>{Escape(Title)}</title>\n");
        svg.Append($"<defs><clipPath id=\"plot-area\"><rect x=\"{N(plotLeft)}\" y=\"{N(plotTop)}\" width=\"{N(plotWidth)}\" height=\"{N(plotHeight)}\"/></clipPath></defs>\n");
        svg.Append($"<rect width=\"{width}\" height=\"{height}\" fill=\"#ffffff\"/>\n");

        // Title and subtitle, centred over the plot area.
        double centreX = plotLeft + plotWidth / 2;
        double titleX = Math.Clamp(centreX, 12 + TextWidth(Title, titleSize) / 2, width - 12 - TextWidth(Title, titleSize) / 2);
        if (Title.Length > 0)
            svg.Append($"<text class=\"title\" x=\"{N(titleX)}\" y=\"{N(titleBaseline)}\" text-anchor=\"middle\" font-size=\"{N(titleSize)}\" font-weight=\"bold\" fill=\"#222222\">{Escape(Title)}</text>\n");
        if (!string.IsNullOrEmpty(Subtitle))
        {
            double subtitleSize = FitFont(Subtitle, SubtitleSize, width - 24);
            double subtitleX = Math.Clamp(centreX, 12 + TextWidth(Subtitle, subtitleSize) / 2, width - 12 - TextWidth(Subtitle, subtitleSize) / 2);
            svg.Append($"<text class=\"subtitle\" x=\"{N(subtitleX)}\" y=\"{N(subtitleBaseline)}\" text-anchor=\"middle\" font-size=\"{N(subtitleSize)}\" fill=\"#666666\">{Escape(Subtitle)}</text>\n");
        }

        // Grid: minor lines, then major lines with tick marks and labels.
        svg.Append("<g class=\"grid\" fill=\"none\" shape-rendering=\"crispEdges\">\n");
        foreach (double v in yAxis.MinorTicks)
            svg.Append($"<line x1=\"{N(plotLeft)}\" x2=\"{N(plotRight)}\" y1=\"{N(Py(v))}\" y2=\"{N(Py(v))}\" stroke=\"#f0f0f0\"/>\n");
        foreach (double v in xAxis.MinorTicks)
            svg.Append($"<line x1=\"{N(Px(v))}\" x2=\"{N(Px(v))}\" y1=\"{N(plotTop)}\" y2=\"{N(plotBottom)}\" stroke=\"#f0f0f0\"/>\n");
        foreach (double v in xAxis.Ticks)
            svg.Append($"<line x1=\"{N(Px(v))}\" x2=\"{N(Px(v))}\" y1=\"{N(plotTop)}\" y2=\"{N(plotBottom)}\" stroke=\"{(v == 0 ? "#c8c8c8" : "#e4e4e4")}\"/>\n");
        foreach (double v in yAxis.Ticks)
            svg.Append($"<line x1=\"{N(plotLeft)}\" x2=\"{N(plotRight)}\" y1=\"{N(Py(v))}\" y2=\"{N(Py(v))}\" stroke=\"{(v == 0 && !yAxis.IsLog ? "#c8c8c8" : "#e4e4e4")}\"/>\n");
        svg.Append($"<rect x=\"{N(plotLeft)}\" y=\"{N(plotTop)}\" width=\"{N(plotWidth)}\" height=\"{N(plotHeight)}\" stroke=\"#b0b0b0\"/>\n");
        foreach (double v in xAxis.Ticks)
            svg.Append($"<line x1=\"{N(Px(v))}\" x2=\"{N(Px(v))}\" y1=\"{N(plotBottom)}\" y2=\"{N(plotBottom + 5)}\" stroke=\"#808080\"/>\n");
        foreach (double v in yAxis.Ticks)
            svg.Append($"<line x1=\"{N(plotLeft - 5)}\" x2=\"{N(plotLeft)}\" y1=\"{N(Py(v))}\" y2=\"{N(Py(v))}\" stroke=\"#808080\"/>\n");
        svg.Append("</g>\n");

        svg.Append($"<g class=\"x-ticks\" font-size=\"{N(TickSize)}\" fill=\"#444444\" text-anchor=\"middle\">\n");
        for (int i = 0; i < xAxis.Ticks.Length; i++)
            svg.Append($"<text x=\"{N(Px(xAxis.Ticks[i]))}\" y=\"{N(plotBottom + 19)}\">{Escape(xAxis.Labels[i])}</text>\n");
        svg.Append("</g>\n");
        svg.Append($"<g class=\"y-ticks\" font-size=\"{N(TickSize)}\" fill=\"#444444\" text-anchor=\"end\">\n");
        for (int i = 0; i < yAxis.Ticks.Length; i++)
            svg.Append($"<text x=\"{N(plotLeft - 8)}\" y=\"{N(Py(yAxis.Ticks[i]) + TickSize * 0.35)}\">{Escape(yAxis.Labels[i])}</text>\n");
        svg.Append("</g>\n");

        // Axis labels.
        if (XLabel.Length > 0)
            svg.Append($"<text class=\"x-label\" x=\"{N(centreX)}\" y=\"{N(plotBottom + 19 + 8 + AxisLabelSize)}\" text-anchor=\"middle\" font-size=\"{N(FitFont(XLabel, AxisLabelSize, plotWidth))}\" fill=\"#222222\">{Escape(XLabel)}</text>\n");
        if (YLabel.Length > 0)
        {
            double cy = plotTop + plotHeight / 2;
            svg.Append($"<text class=\"y-label\" x=\"{N(yLabelBaseline)}\" y=\"{N(cy)}\" transform=\"rotate(-90 {N(yLabelBaseline)} {N(cy)})\" text-anchor=\"middle\" font-size=\"{N(FitFont(YLabel, AxisLabelSize, plotHeight))}\" fill=\"#222222\">{Escape(YLabel)}</text>\n");
        }

        // Series, clipped to the plot area.
        svg.Append($"<g class=\"series\" clip-path=\"url(#plot-area)\" fill=\"none\" stroke-width=\"{N(StrokeWidth)}\" stroke-linejoin=\"round\" stroke-linecap=\"round\">\n");
        for (int s = 0; s < _series.Count; s++)
        {
            (string colour, string? dash) = StyleOf(s);
            string dashAttribute = dash is null ? "" : $" stroke-dasharray=\"{dash}\"";
            foreach (List<(double X, double Y)> segment in segments[s])
            {
                if (segment.Count == 1)
                {
                    // A lone point has no line to draw: mark it with a dot.
                    svg.Append($"<circle cx=\"{N(Px(segment[0].X))}\" cy=\"{N(Py(segment[0].Y))}\" r=\"3\" fill=\"{colour}\" stroke=\"none\"><title>{Escape(_series[s].Name)}</title></circle>\n");
                    continue;
                }
                svg.Append($"<polyline stroke=\"{colour}\"{dashAttribute} points=\"");
                for (int i = 0; i < segment.Count; i++)
                {
                    if (i > 0) svg.Append(' ');
                    svg.Append(N(Px(segment[i].X))).Append(',').Append(N(Py(segment[i].Y)));
                }
                svg.Append($"\"><title>{Escape(_series[s].Name)}</title></polyline>\n");
            }
        }
        svg.Append("</g>\n");

        // Notes inside the plot area.
        if (!anyData)
            svg.Append($"<text class=\"note\" x=\"{N(centreX)}\" y=\"{N(plotTop + plotHeight / 2 + 5)}\" text-anchor=\"middle\" font-size=\"14\" font-style=\"italic\" fill=\"#888888\">no data</text>\n");
        if (nonPositive > 0)
        {
            string note = $"{nonPositive.ToString(CultureInfo.InvariantCulture)} non-positive value{(nonPositive == 1 ? "" : "s")} not shown (log scale)";
            svg.Append($"<text class=\"note\" x=\"{N(plotRight - 6)}\" y=\"{N(plotTop + 15)}\" text-anchor=\"end\" font-size=\"11\" font-style=\"italic\" fill=\"#888888\">{Escape(note)}</text>\n");
        }

        // Legend, outside the plot area.
        if (_series.Count > 0)
        {
            svg.Append($"<g class=\"legend\" font-size=\"{N(LegendSize)}\" fill=\"#222222\">\n");
            if (legendRight)
            {
                double lx = plotRight + 16, ly = plotTop;
                svg.Append($"<rect x=\"{N(lx)}\" y=\"{N(ly)}\" width=\"{N(legendRightWidth)}\" height=\"{N(legendRightHeight)}\" fill=\"#ffffff\" stroke=\"#d0d0d0\" rx=\"3\"/>\n");
                for (int s = 0; s < _series.Count; s++)
                    LegendEntry(svg, s, legendNames[s], lx + LegendPad, ly + LegendPad + 7 + s * LegendRow);
            }
            else
            {
                double boxWidth = belowRows.Max(row => row.Sum(s => entryWidth(s)) + 18 * (row.Count - 1)) + 2 * LegendPad;
                double lx = Math.Clamp(centreX - boxWidth / 2, 12, Math.Max(12, width - 12 - boxWidth));
                double ly = height - 12 - legendBelowHeight;
                svg.Append($"<rect x=\"{N(lx)}\" y=\"{N(ly)}\" width=\"{N(boxWidth)}\" height=\"{N(legendBelowHeight)}\" fill=\"#ffffff\" stroke=\"#d0d0d0\" rx=\"3\"/>\n");
                for (int r = 0; r < belowRows.Count; r++)
                {
                    double ex = lx + LegendPad;
                    foreach (int s in belowRows[r])
                    {
                        LegendEntry(svg, s, legendNames[s], ex, ly + LegendPad + 7 + r * LegendRow);
                        ex += entryWidth(s) + 18;
                    }
                }
            }
            svg.Append("</g>\n");
        }

        svg.Append("</svg>\n");
        return svg.ToString();
    }

    /// <summary>Colour and dash pattern of series number <paramref name="index"/>.</summary>
    internal static (string Colour, string? Dash) Style(int index) =>
        (Palette[index % Palette.Length], DashPatterns[index / Palette.Length % DashPatterns.Length]);

    /// <summary>Style of series <paramref name="index"/> of this chart: its palette style, dashed if asked for.</summary>
    private (string Colour, string? Dash) StyleOf(int index)
    {
        var (colour, dash) = Style(_series[index].Colour ?? index);
        return (colour, _series[index].Dashed ? dash ?? DashPatterns[1] : dash);
    }

    private void LegendEntry(StringBuilder svg, int index, string label, double x, double centreY)
    {
        (string colour, string? dash) = StyleOf(index);
        string dashAttribute = dash is null ? "" : $" stroke-dasharray=\"{dash}\"";
        svg.Append($"<line x1=\"{N(x)}\" x2=\"{N(x + LegendSample)}\" y1=\"{N(centreY)}\" y2=\"{N(centreY)}\" stroke=\"{colour}\" stroke-width=\"{N(StrokeWidth + 0.7)}\"{dashAttribute}/>\n");
        svg.Append($"<text x=\"{N(x + LegendSample + 6)}\" y=\"{N(centreY + LegendSize * 0.35)}\">{Escape(label)}</text>\n");
    }

    /// <summary>
    /// Rough width of <paramref name="text"/> in a proportional sans-serif font, erring on the wide
    /// side (DejaVu Sans, the usual fallback on Linux, is wider than Helvetica).
    /// </summary>
    internal static double TextWidth(string text, double fontSize)
    {
        double em = 0;
        foreach (char c in text)
        {
            em += c switch
            {
                'i' or 'l' or 'j' or '.' or ',' or ':' or ';' or '\'' or '|' or '!' or ' ' => 0.32,
                'f' or 't' or 'r' or 'I' or '(' or ')' or '[' or ']' or '-' => 0.42,
                'm' or 'w' or 'M' or 'W' or '@' or '%' => 0.92,
                >= 'A' and <= 'Z' => 0.72,
                _ => 0.63,
            };
        }
        return em * fontSize;
    }

    /// <summary>The font size, reduced (down to 9px) so that the text fits in <paramref name="room"/>.</summary>
    private static double FitFont(string text, double size, double room)
    {
        double w = TextWidth(text, size);
        return w <= room || w == 0 ? size : Math.Max(9, Math.Floor(size * room / w * 10) / 10);
    }

    /// <summary>Keeps far-off coordinates (outside fixed ranges) within what renderers handle well.</summary>
    private static double Clamp(double pixel) => double.IsNaN(pixel) ? 0 : Math.Clamp(pixel, -1e5, 1e5);

    /// <summary>A coordinate with at most two decimals, invariant culture.</summary>
    private static string N(double v)
    {
        string s = Math.Round(v, 2).ToString("0.##", CultureInfo.InvariantCulture);
        return s == "-0" ? "0" : s;
    }

    /// <summary>XML-escapes text and drops characters XML 1.0 cannot contain.</summary>
    internal static string Escape(string text)
    {
        var sb = new StringBuilder(text.Length + 16);
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            switch (c)
            {
                case '&': sb.Append("&amp;"); break;
                case '<': sb.Append("&lt;"); break;
                case '>': sb.Append("&gt;"); break;
                case '"': sb.Append("&quot;"); break;
                case '\'': sb.Append("&apos;"); break;
                default:
                    if (char.IsHighSurrogate(c) && i + 1 < text.Length && XmlConvert.IsXmlSurrogatePair(text[i + 1], c))
                    {
                        sb.Append(c).Append(text[++i]);
                    }
                    else if (XmlConvert.IsXmlChar(c))
                    {
                        sb.Append(c == '\n' || c == '\r' || c == '\t' ? ' ' : c);
                    }
                    break;
            }
        }
        return sb.ToString();
    }
}
