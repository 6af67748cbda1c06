namespace Flora.Data.Corpora;

/// <summary>One verse in two languages.</summary>
/// <param name="Reference">The verse's reference, "Book C:V" with the book's canonical English name, such as "1 Samuel 3:4".</param>
/// <param name="Source">The text in the source language (Spanish in the prepared Bible data): one line, no tabs, not empty.</param>
/// <param name="Target">The text in the target language (English in the prepared Bible data): one line, no tabs, not empty.</param>
public sealed record VersePair(string Reference, string Source, string Target);
