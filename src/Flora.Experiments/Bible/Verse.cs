using Flora.Data.Corpora;

namespace Flora.Experiments.Bible;

/// <summary>One verse of a Bible text, with its markup removed.</summary>
/// <param name="Book">The book's canonical English name from <see cref="BibleBooks"/> (such as "1 Samuel"),
/// or the name diatheke printed when the book is not one of the 66.</param>
/// <param name="Chapter">The chapter number, from 1.</param>
/// <param name="Number">The verse number within the chapter, from 1.</param>
/// <param name="Text">The verse text: one line, single spaces, no markup, punctuation (curly quotes included) as in the source.</param>
public sealed record Verse(string Book, int Chapter, int Number, string Text)
{
    /// <summary>The usual reference, such as "Genesis 1:1".</summary>
    public string Reference => $"{Book} {Chapter}:{Number}";
}
