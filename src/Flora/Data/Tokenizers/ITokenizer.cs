namespace Flora.Data.Tokenizers;

/// <summary>
/// A tokenizer: text to token ids and back. Implemented by <see cref="ByteLevelBpe"/> (GPT-2's own
/// encoder files) and <see cref="HuggingFaceTokenizer"/> (a Hugging Face <c>tokenizer.json</c>).
/// </summary>
/// <remarks>
/// <para>Two encodings are offered. <see cref="Encode"/> gives the ids of the text alone, the pieces a
/// caller concatenates (Hugging Face: <c>encode(text, add_special_tokens=False)</c>);
/// <see cref="EncodeWithSpecialTokens"/> adds what the tokenizer's post-processor puts around a
/// single text, such as Llama's beginning-of-text token (Hugging Face: <c>encode(text)</c>).</para>
/// <para>Whether an added token written inside the text (<c>&lt;|endoftext|&gt;</c>, <c>&lt;s&gt;</c>)
/// becomes its id is the tokenizer's own rule and the same for both: a Hugging Face tokenizer
/// matches its added tokens inline, GPT-2's original encoder (<see cref="ByteLevelBpe"/>) encodes
/// them as ordinary text.</para>
/// <para>Implementations are immutable and safe to use from several threads.</para>
/// </remarks>
public interface ITokenizer
{
    /// <summary>The number of token ids: every id lies in <c>[0, VocabularySize)</c>.</summary>
    int VocabularySize { get; }

    /// <summary>
    /// The tokens added on top of the model's vocabulary (special tokens such as
    /// <c>&lt;|endoftext|&gt;</c> or <c>&lt;s&gt;</c>, and any others), in id order.
    /// </summary>
    IReadOnlyList<AddedToken> AddedTokens { get; }

    /// <summary>The beginning-of-text (BOS) token's id, or null where the tokenizer defines none.</summary>
    int? BeginOfText { get; }

    /// <summary>The end-of-text (EOS) token's id, or null where the tokenizer defines none.</summary>
    int? EndOfText { get; }

    /// <summary>
    /// A string that identifies the tokenizer (its name, or a SHA-256 of its files), stored in
    /// checkpoints so that a model is never read back with another tokenizer.
    /// </summary>
    string Identity { get; }

    /// <summary>The ids of a text alone, without the tokens a post-processor adds around it.</summary>
    /// <exception cref="ArgumentNullException"><paramref name="text"/> is null.</exception>
    int[] Encode(string text);

    /// <summary>The ids of a text with the tokens the post-processor adds around a single text (for example BOS).</summary>
    /// <exception cref="ArgumentNullException"><paramref name="text"/> is null.</exception>
    int[] EncodeWithSpecialTokens(string text);

    /// <summary>Decodes ids to text, special tokens included.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An id is not a token of this tokenizer.</exception>
    string Decode(ReadOnlySpan<int> ids);

    /// <summary>Decodes ids to text, leaving out the special tokens when <paramref name="skipSpecialTokens"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An id is not a token of this tokenizer.</exception>
    string Decode(ReadOnlySpan<int> ids, bool skipSpecialTokens);

    /// <summary>The id of a token given as the vocabulary writes it (GPT-2: "Ġworld"), or null.</summary>
    /// <exception cref="ArgumentNullException"><paramref name="token"/> is null.</exception>
    int? TokenId(string token);

    /// <summary>A token as the vocabulary writes it (GPT-2: 995 -&gt; "Ġworld").</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="id"/> is not a token of this tokenizer.</exception>
    string TokenString(int id);
}

/// <summary>A token added on top of a tokenizer's model vocabulary.</summary>
/// <param name="Id">Its id.</param>
/// <param name="Content">Its text, as it is matched in the input.</param>
/// <param name="Special">Whether it is a special token (left out by <see cref="ITokenizer.Decode(ReadOnlySpan{int}, bool)"/> when asked).</param>
public sealed record AddedToken(int Id, string Content, bool Special);
