namespace PtActors.Cli;

/// <summary>Plain aligned columns (a comparison table, a run list): every column but the last padded to its widest cell.</summary>
internal static class TextColumns
{
    /// <summary>Writes <paramref name="rows"/> (the first is the header) to <paramref name="output"/>.</summary>
    public static void Write(TextWriter output, IReadOnlyList<string[]> rows)
    {
        if (rows.Count == 0)
            return;
        int columns = rows[0].Length;
        var width = new int[columns];
        foreach (var row in rows)
        {
            for (int c = 0; c < columns - 1; c++)
                width[c] = Math.Max(width[c], row[c].Length);
        }
        var line = new System.Text.StringBuilder();
        foreach (var row in rows)
        {
            line.Clear();
            for (int c = 0; c < columns; c++)
                line.Append(c < columns - 1 ? row[c].PadRight(width[c] + 2) : row[c]);
            output.WriteLine(line.ToString().TrimEnd());
        }
    }
}
