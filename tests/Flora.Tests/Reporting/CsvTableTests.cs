using System.Globalization;
using Flora.Reporting;

namespace Flora.Tests.Reporting;

public class CsvTableTests
{
    [Fact]
    public void WritesHeaderAndRows()
    {
        var table = new CsvTable("epoch", "loss", "note");
        table.AddRow(1, 0.5, "ok");
        table.AddRow(2, 0.25, null);

        Assert.Equal("epoch,loss,note\n1,0.5,ok\n2,0.25,\n", table.ToString());
        Assert.Equal(2, table.RowCount);
        Assert.Equal(new[] { "epoch", "loss", "note" }, table.Columns);
    }

    [Fact]
    public void QuotesFieldsPerRfc4180()
    {
        var table = new CsvTable("name, with comma", "value");
        table.AddRow("plain", "a,b");
        table.AddRow("say \"hi\"", "line1\nline2");
        table.AddRow("cr\rhere", " spaces are kept ");

        Assert.Equal(
            "\"name, with comma\",value\n" +
            "plain,\"a,b\"\n" +
            "\"say \"\"hi\"\"\",\"line1\nline2\"\n" +
            "\"cr\rhere\", spaces are kept \n",
            table.ToString());
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void RowWithWrongNumberOfValuesThrows(int count)
    {
        var table = new CsvTable("a", "b");
        var ex = Assert.Throws<ArgumentException>(() => table.AddRow(new object?[count]));
        Assert.Contains("2 column", ex.Message);
        Assert.Equal(0, table.RowCount);
    }

    [Fact]
    public void BadHeadersThrow()
    {
        Assert.Throws<ArgumentException>(() => new CsvTable());
        Assert.Throws<ArgumentException>(() => new CsvTable("a", "b", "a"));
        Assert.Throws<ArgumentException>(() => new CsvTable("a", null!));
    }

    [Fact]
    public void NumbersUseADecimalPointUnderAGermanCulture()
    {
        string csv = TestCultures.With(TestCultures.German(), () =>
        {
            var table = new CsvTable("double", "float", "decimal", "int", "missing", "date");
            table.AddRow(1234.5, 0.25f, 1234567.75m, 1234567, (double?)null, new DateTime(2024, 3, 1, 12, 0, 0, DateTimeKind.Utc));
            return table.ToString();
        });

        Assert.Equal("double,float,decimal,int,missing,date\n1234.5,0.25,1234567.75,1234567,,2024-03-01T12:00:00.0000000Z\n", csv);
    }

    [Fact]
    public void FloatingPointIsShortButRoundTrips()
    {
        double[] doubles = { 0.1, 0.1 + 0.2, 1.0 / 3, Math.PI * 1e-300, double.MaxValue, -2.5e-7, 1e21 };
        float[] floats = { 0.1f, 1f / 3, 16777217f, float.Epsilon, 3.4e38f };
        var table = new CsvTable("value");
        foreach (double d in doubles) table.AddRow(d);
        foreach (float f in floats) table.AddRow(f);

        string[] cells = table.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Skip(1).ToArray();
        Assert.Equal("0.1", cells[0]);
        Assert.Equal("0.1", cells[doubles.Length]); // float 0.1, not 0.100000001
        for (int i = 0; i < doubles.Length; i++)
            Assert.Equal(doubles[i], double.Parse(cells[i], CultureInfo.InvariantCulture));
        for (int i = 0; i < floats.Length; i++)
            Assert.Equal(floats[i], float.Parse(cells[doubles.Length + i], CultureInfo.InvariantCulture));
        Assert.All(cells, c => Assert.True(c.Length <= 24, c));
    }

    [Fact]
    public void SpecialValues()
    {
        var table = new CsvTable("nan", "inf", "bool", "nullable");
        double? some = 2.5;
        table.AddRow(double.NaN, double.NegativeInfinity, true, some);
        Assert.Equal("nan,inf,bool,nullable\nNaN,-Infinity,true,2.5\n", table.ToString());
    }

    [Fact]
    public void SaveIsAtomicAndMatchesToString()
    {
        string dir = Directory.CreateTempSubdirectory("flora-csv-").FullName;
        try
        {
            var table = new CsvTable("a", "b");
            table.AddRow(1, "x,y");
            string path = Path.Combine(dir, "table.csv");
            File.WriteAllText(path, "previous\n");

            table.Save(path);

            Assert.Equal(table.ToString(), File.ReadAllText(path));
            Assert.Equal(new[] { path }, Directory.GetFileSystemEntries(dir));
            Assert.NotEqual(0xEF, File.ReadAllBytes(path)[0]); // no UTF-8 BOM
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
