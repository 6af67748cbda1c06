using System.Globalization;
using System.Xml.Linq;
using Flora.Reporting;

namespace Flora.Tests.Reporting;

public class SvgLineChartTests
{
    private static readonly XNamespace Svg = "http://www.w3.org/2000/svg";

    private static List<(double X, double Y)> Line(int n, Func<int, double> y) =>
        Enumerable.Range(0, n).Select(i => ((double)i, y(i))).ToList();

    private static XDocument Parse(SvgLineChart chart, int width = 800, int height = 480)
    {
        string text = chart.ToSvg(width, height);
        XDocument doc = XDocument.Parse(text);
        Assert.Equal(Svg + "svg", doc.Root!.Name);
        return doc;
    }

    private static IEnumerable<XElement> ByClass(XDocument doc, string name, string cssClass) =>
        doc.Descendants(Svg + name).Where(e => (string?)e.Attribute("class") == cssClass);

    private static string[] LegendTexts(XDocument doc) =>
        ByClass(doc, "g", "legend").Single().Elements(Svg + "text").Select(t => t.Value).ToArray();

    private static (double X, double Y)[] PointsOf(XElement polyline) =>
        ((string)polyline.Attribute("points")!).Split(' ').Select(p =>
        {
            string[] xy = p.Split(',');
            Assert.Equal(2, xy.Length);
            return (double.Parse(xy[0], CultureInfo.InvariantCulture), double.Parse(xy[1], CultureInfo.InvariantCulture));
        }).ToArray();

    private static (double X, double Y, double Width, double Height) PlotArea(XDocument doc)
    {
        XElement rect = doc.Descendants(Svg + "clipPath").Single().Element(Svg + "rect")!;
        double Get(string name) => double.Parse((string)rect.Attribute(name)!, CultureInfo.InvariantCulture);
        return (Get("x"), Get("y"), Get("width"), Get("height"));
    }

    [Fact]
    public void OnePolylinePerSeriesWithAllPoints()
    {
        var chart = new SvgLineChart("Loss", "epoch", "loss");
        chart.AddSeries("train", Line(5, i => 1.0 / (i + 1)));
        chart.AddSeries("valid", Line(12, i => 1.2 / (i + 1)));
        chart.AddSeries("test", Line(40, i => 0.9 / (i + 1)));

        XDocument doc = Parse(chart);
        XElement[] lines = doc.Descendants(Svg + "polyline").ToArray();

        Assert.Equal(new[] { 5, 12, 40 }, lines.Select(l => PointsOf(l).Length));
        Assert.Equal(3, lines.Select(l => (string)l.Attribute("stroke")!).Distinct().Count());
        Assert.Equal(new[] { "train", "valid", "test" }, lines.Select(l => l.Element(Svg + "title")!.Value));
    }

    [Fact]
    public void PointsAreInsideThePlotAreaAndInOrder()
    {
        var chart = new SvgLineChart("t", "x", "y");
        chart.AddSeries("up", Line(10, i => i * i));
        XDocument doc = Parse(chart);
        var area = PlotArea(doc);
        var points = PointsOf(doc.Descendants(Svg + "polyline").Single());

        foreach ((double x, double y) in points)
        {
            Assert.InRange(x, area.X, area.X + area.Width);
            Assert.InRange(y, area.Y, area.Y + area.Height);
        }
        for (int i = 1; i < points.Length; i++)
        {
            Assert.True(points[i].X > points[i - 1].X);
            Assert.True(points[i].Y < points[i - 1].Y, "larger values are drawn higher up");
        }
    }

    [Fact]
    public void LinesAreClippedToThePlotArea()
    {
        var chart = new SvgLineChart("t", "x", "y") { YMin = 0, YMax = 1 };
        chart.AddSeries("s", Line(5, i => i)); // goes far above YMax
        XDocument doc = Parse(chart);

        string clipId = (string)doc.Descendants(Svg + "clipPath").Single().Attribute("id")!;
        XElement group = doc.Descendants(Svg + "polyline").Single().Parent!;
        Assert.Equal($"url(#{clipId})", (string?)group.Attribute("clip-path"));
        Assert.Equal("1.8", (string?)group.Attribute("stroke-width"));
    }

    [Fact]
    public void TitleSubtitleAndAxisLabelsAreShown()
    {
        var chart = new SvgLineChart("Training loss", "epoch", "cross-entropy") { Subtitle = "lr 0.01, batch 64" };
        chart.AddSeries("train", Line(3, i => i));
        XDocument doc = Parse(chart);

        Assert.Equal("Training loss", ByClass(doc, "text", "title").Single().Value);
        Assert.Equal("lr 0.01, batch 64", ByClass(doc, "text", "subtitle").Single().Value);
        Assert.Equal("epoch", ByClass(doc, "text", "x-label").Single().Value);
        XElement yLabel = ByClass(doc, "text", "y-label").Single();
        Assert.Equal("cross-entropy", yLabel.Value);
        Assert.StartsWith("rotate(-90", (string?)yLabel.Attribute("transform"));
    }

    [Fact]
    public void LegendListsEverySeriesWithItsColour()
    {
        var chart = new SvgLineChart("t", "x", "y");
        string[] names = { "alpha", "beta", "gamma" };
        foreach (string name in names) chart.AddSeries(name, Line(4, i => i));
        XDocument doc = Parse(chart);

        Assert.Equal(names, LegendTexts(doc));
        string[] legendColours = ByClass(doc, "g", "legend").Single().Elements(Svg + "line")
            .Select(l => (string)l.Attribute("stroke")!).ToArray();
        string[] lineColours = doc.Descendants(Svg + "polyline").Select(l => (string)l.Attribute("stroke")!).ToArray();
        Assert.Equal(lineColours, legendColours);
    }

    [Fact]
    public void PaletteCyclesWithDashesAfterEightSeries()
    {
        var chart = new SvgLineChart("t", "x", "y");
        for (int s = 0; s < 10; s++) chart.AddSeries($"s{s}", Line(3, i => i + s));
        XElement[] lines = Parse(chart).Descendants(Svg + "polyline").ToArray();

        Assert.Equal(8, lines.Take(8).Select(l => (string)l.Attribute("stroke")!).Distinct().Count());
        Assert.All(lines.Take(8), l => Assert.Null(l.Attribute("stroke-dasharray")));
        Assert.Equal((string)lines[0].Attribute("stroke")!, (string)lines[8].Attribute("stroke")!);
        Assert.NotNull(lines[8].Attribute("stroke-dasharray"));
    }

    [Theory]
    [InlineData("short")]
    [InlineData("a very long series name that cannot possibly fit beside the plot area")]
    public void LegendIsOutsideThePlotArea(string name)
    {
        var chart = new SvgLineChart("t", "x", "y");
        chart.AddSeries(name, Line(5, i => i));
        chart.AddSeries("other", Line(5, i => 4 - i));
        XDocument doc = Parse(chart);
        var area = PlotArea(doc);
        XElement box = ByClass(doc, "g", "legend").Single().Element(Svg + "rect")!;
        double x = double.Parse((string)box.Attribute("x")!, CultureInfo.InvariantCulture);
        double y = double.Parse((string)box.Attribute("y")!, CultureInfo.InvariantCulture);
        double width = double.Parse((string)box.Attribute("width")!, CultureInfo.InvariantCulture);
        double height = double.Parse((string)box.Attribute("height")!, CultureInfo.InvariantCulture);

        bool right = x >= area.X + area.Width;
        bool below = y >= area.Y + area.Height;
        Assert.True(right || below, "the legend overlaps the plot area");
        Assert.True(x >= 0 && y >= 0 && x + width <= 800 && y + height <= 480, "the legend is cut off");
        Assert.Equal(name.Length > 30, below);
    }

    [Fact]
    public void TextIsXmlEscaped()
    {
        const string name = "a<b & c>\"d\"";
        var chart = new SvgLineChart("x < y & z", "<x>", "y & z") { Subtitle = "1 < 2" };
        chart.AddSeries(name, Line(3, i => i));
        string text = chart.ToSvg();

        Assert.Contains("a&lt;b &amp; c&gt;", text);
        Assert.DoesNotContain("a<b", text);
        XDocument doc = XDocument.Parse(text);
        Assert.Contains(name, LegendTexts(doc));
        Assert.Equal("x < y & z", ByClass(doc, "text", "title").Single().Value);
        Assert.Equal("<x>", ByClass(doc, "text", "x-label").Single().Value);
    }

    [Fact]
    public void ControlCharactersDoNotBreakTheXml()
    {
        var chart = new SvgLineChart("bad\u0001title", "x", "y");
        chart.AddSeries("nul\0name", Line(3, i => i));
        XDocument doc = Parse(chart);
        Assert.Equal("badtitle", ByClass(doc, "text", "title").Single().Value);
    }

    [Fact]
    public void NonFinitePointsAreSkippedAndBreakTheLine()
    {
        var chart = new SvgLineChart("t", "x", "y");
        chart.AddSeries("gappy", new List<(double X, double Y)>
        {
            (0, 1), (1, double.NaN), (2, 3), (3, 4), (double.PositiveInfinity, 5), (5, 6), (6, 7), (7, 8),
            (8, double.NegativeInfinity), (9, 2),
        });
        string text = chart.ToSvg();
        XDocument doc = XDocument.Parse(text);

        Assert.Equal(new[] { 2, 3 }, doc.Descendants(Svg + "polyline").Select(l => PointsOf(l).Length));
        Assert.Equal(2, doc.Descendants(Svg + "circle").Count()); // the lone points (0, 1) and (9, 2)
        Assert.DoesNotContain("NaN", text);
        Assert.DoesNotContain("Infinity", text);
    }

    [Fact]
    public void LogYSkipsNonPositiveValuesAndSaysSo()
    {
        var chart = new SvgLineChart("t", "x", "y") { LogY = true };
        chart.AddSeries("s", new List<(double X, double Y)> { (0, 100), (1, 10), (2, 0), (3, -1), (4, 1), (5, 0.1) });
        XDocument doc = Parse(chart);

        Assert.Equal(new[] { 2, 2 }, doc.Descendants(Svg + "polyline").Select(l => PointsOf(l).Length));
        Assert.Contains("2 non-positive values", ByClass(doc, "text", "note").Single().Value);
        string[] yTicks = ByClass(doc, "g", "y-ticks").Single().Elements(Svg + "text").Select(t => t.Value).ToArray();
        Assert.Equal(new[] { "0.1", "1", "10", "100" }, yTicks);
    }

    [Fact]
    public void LogYPointsAreEvenlySpacedPerDecade()
    {
        var chart = new SvgLineChart("t", "x", "y") { LogY = true };
        chart.AddSeries("s", new List<(double X, double Y)> { (0, 1), (1, 10), (2, 100), (3, 1000) });
        var points = PointsOf(Parse(chart).Descendants(Svg + "polyline").Single());
        double d1 = points[0].Y - points[1].Y, d2 = points[1].Y - points[2].Y, d3 = points[2].Y - points[3].Y;
        Assert.True(d1 > 10);
        Assert.Equal(d1, d2, 0.02);
        Assert.Equal(d2, d3, 0.02);
    }

    [Fact]
    public void LogXPointsAreEvenlySpacedPerDecadeWithDecadeLabelsAndMinorGrid()
    {
        var chart = new SvgLineChart("t", "x", "y") { LogX = true };
        chart.AddSeries("s", new List<(double X, double Y)> { (1, 0), (10, 1), (100, 2), (1000, 3) });
        XDocument doc = Parse(chart);
        var points = PointsOf(doc.Descendants(Svg + "polyline").Single());
        double d1 = points[1].X - points[0].X, d2 = points[2].X - points[1].X, d3 = points[3].X - points[2].X;
        Assert.True(d1 > 10);
        Assert.Equal(d1, d2, 0.02);
        Assert.Equal(d2, d3, 0.02);
        string[] xTicks = ByClass(doc, "g", "x-ticks").Single().Elements(Svg + "text").Select(t => t.Value).ToArray();
        Assert.Equal(new[] { "1", "10", "100", "1000" }, xTicks);
        // Minor grid lines at 2..9 x 10^k are vertical: 8 per decade, 3 decades.
        int verticalMinor = ByClass(doc, "g", "grid").Single().Elements(Svg + "line")
            .Count(l => (string)l.Attribute("stroke")! == "#f0f0f0" && (string)l.Attribute("x1")! == (string)l.Attribute("x2")!);
        Assert.Equal(24, verticalMinor);
    }

    [Fact]
    public void LogXSkipsNonPositiveValuesAndSaysSo()
    {
        var chart = new SvgLineChart("t", "x", "y") { LogX = true };
        chart.AddSeries("s", new List<(double X, double Y)> { (-1, 1), (0, 2), (1, 3), (10, 4) });
        XDocument doc = Parse(chart);
        Assert.Equal(new[] { 2 }, doc.Descendants(Svg + "polyline").Select(l => PointsOf(l).Length));
        Assert.Contains("2 non-positive values", ByClass(doc, "text", "note").Single().Value);
    }

    [Fact]
    public void SeriesCanShareAPaletteColour()
    {
        var chart = new SvgLineChart("t", "x", "y");
        chart.AddSeries("a", Line(3, i => i));
        chart.AddSeries("b", Line(3, i => 2 * i));
        chart.AddSeries("a, predicted", Line(3, i => i + 0.5), dashed: true, colour: 0);
        chart.AddSeries("b, predicted", Line(3, i => 2 * i + 0.5), dashed: true, colour: 1);
        XElement[] lines = Parse(chart).Descendants(Svg + "polyline").ToArray();
        string Stroke(int i) => (string)lines[i].Attribute("stroke")!;
        Assert.Equal(Stroke(0), Stroke(2));
        Assert.Equal(Stroke(1), Stroke(3));
        Assert.NotEqual(Stroke(0), Stroke(1));
        Assert.NotNull(lines[2].Attribute("stroke-dasharray"));
        Assert.Throws<ArgumentOutOfRangeException>(() => chart.AddSeries("c", Line(2, i => i), colour: -1));
    }

    [Fact]
    public void NoSeriesStillGivesAValidChartWithANote()
    {
        var chart = new SvgLineChart("Empty", "x", "y");
        XDocument doc = Parse(chart);
        Assert.Equal("no data", ByClass(doc, "text", "note").Single().Value);
        Assert.Empty(doc.Descendants(Svg + "polyline"));
        Assert.NotEmpty(ByClass(doc, "g", "y-ticks").Single().Elements(Svg + "text"));
    }

    [Fact]
    public void EmptySeriesIsMarkedInTheLegend()
    {
        var chart = new SvgLineChart("t", "x", "y");
        chart.AddSeries("nothing", new List<(double X, double Y)>());
        chart.AddSeries("only NaN", new List<(double X, double Y)> { (double.NaN, 1), (2, double.NaN) });
        XDocument doc = Parse(chart);
        Assert.Equal(new[] { "nothing (no data)", "only NaN (no data)" }, LegendTexts(doc));
        Assert.Equal("no data", ByClass(doc, "text", "note").Single().Value);
    }

    [Fact]
    public void NumbersAreInvariantUnderAGermanCulture()
    {
        var chart = new SvgLineChart("t", "x", "y");
        chart.AddSeries("s", Line(7, i => 0.123 * i + 0.5));
        string text = TestCultures.With(TestCultures.German(), () => chart.ToSvg(777, 433));

        XDocument doc = XDocument.Parse(text);
        Assert.Equal(7, PointsOf(doc.Descendants(Svg + "polyline").Single()).Length);
        string[] yTicks = ByClass(doc, "g", "y-ticks").Single().Elements(Svg + "text").Select(t => t.Value).ToArray();
        Assert.Contains(yTicks, t => t.Contains('.'));
        Assert.DoesNotContain(yTicks, t => t.Contains(','));
        foreach (XAttribute attribute in doc.Descendants().Attributes().Where(a => a.Name.LocalName is "x" or "y" or "width" or "height"))
            Assert.True(double.TryParse(attribute.Value, NumberStyles.Float, CultureInfo.InvariantCulture, out _), attribute.ToString());
    }

    [Fact]
    public void FixedRangesAreHonoured()
    {
        var chart = new SvgLineChart("t", "x", "y") { XMin = 0, XMax = 10, YMin = 0, YMax = 1 };
        chart.AddSeries("s", new List<(double X, double Y)> { (0, 0), (10, 1) });
        XDocument doc = Parse(chart);
        var area = PlotArea(doc);
        var points = PointsOf(doc.Descendants(Svg + "polyline").Single());
        Assert.Equal(area.X, points[0].X, 0.01);
        Assert.Equal(area.Y + area.Height, points[0].Y, 0.01);
        Assert.Equal(area.X + area.Width, points[1].X, 0.01);
        Assert.Equal(area.Y, points[1].Y, 0.01);
    }

    [Fact]
    public void InvertedFixedRangeIsRejected()
    {
        var chart = new SvgLineChart("t", "x", "y") { YMin = 2, YMax = 1 };
        Assert.Throws<InvalidOperationException>(() => chart.ToSvg());
    }

    [Fact]
    public void SaveWritesTheSvgAndLeavesNoTemporaryFile()
    {
        string dir = Directory.CreateTempSubdirectory("flora-svg-").FullName;
        try
        {
            var chart = new SvgLineChart("t", "x", "y");
            chart.AddSeries("s", Line(3, i => i));
            string path = Path.Combine(dir, "chart.svg");
            File.WriteAllText(path, "old content");

            chart.Save(path);

            Assert.Equal(chart.ToSvg(), File.ReadAllText(path));
            Assert.Equal(new[] { path }, Directory.GetFileSystemEntries(dir));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
