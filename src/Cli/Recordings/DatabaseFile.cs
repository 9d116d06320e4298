using System.Buffers.Binary;
using System.Globalization;
using Microsoft.Data.Sqlite;
using PtActors.Persistence.Sqlite;

namespace PtActors.Cli.Recordings;

/// <summary>
/// A ptactors database opened for reading without changing it or anything beside it, checked first: the SQLite
/// header read by hand (a file shorter than its header says is named as truncated, with the page it cuts),
/// <c>PRAGMA quick_check</c> (a damaged b-tree page is named by SQLite's own message: tree, page, cell) and the
/// journal and snapshot tables. A file with a non-empty <c>-wal</c> beside it is read from a private copy of the
/// two (even a read-only SQLite connection creates a <c>-shm</c> beside a WAL database); the copy is deleted on
/// <see cref="Dispose"/>.
/// </summary>
internal sealed class DatabaseFile : IDisposable
{
    private const int HeaderSize = 100;

    private static ReadOnlySpan<byte> Magic => "SQLite format 3\0"u8;

    private readonly string? _copyDir;

    private DatabaseFile(string readPath, string? copyDir)
    {
        ReadPath = readPath;
        _copyDir = copyDir;
    }

    /// <summary>The file to read: the database itself, or its private copy.</summary>
    public string ReadPath { get; }

    /// <summary>
    /// Opens <paramref name="path"/> for reading; null with <paramref name="why"/> (one line naming the position
    /// where there is one: a header byte, a page, an SQLite tree/page/cell) when it is not a readable ptactors database.
    /// </summary>
    public static DatabaseFile? Open(string path, out string? why)
    {
        why = null;
        if (string.IsNullOrEmpty(path))
        {
            why = "empty path";
            return null;
        }
        if (Directory.Exists(path))
        {
            why = "it is a directory";
            return null;
        }
        if (!File.Exists(path))
        {
            why = "no such file";
            return null;
        }
        string? copyDir = null;
        try
        {
            string full = Path.GetFullPath(path);
            why = CheckHeader(full);
            if (why is not null)
                return null;
            string readPath = full;
            var wal = new FileInfo(full + "-wal");
            if (wal.Exists && wal.Length > 0)
            {
                // Committed transactions may be in the -wal only: read them from a copy of both files.
                copyDir = Directory.CreateTempSubdirectory("ptactors-read-").FullName;
                readPath = Path.Combine(copyDir, "copy.db");
                File.Copy(full, readPath);
                File.Copy(wal.FullName, readPath + "-wal");
            }
            why = CheckContent(readPath);
            if (why is not null)
            {
                Delete(copyDir);
                return null;
            }
            return new DatabaseFile(readPath, copyDir);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Delete(copyDir);
            why = e.Message.ReplaceLineEndings(" ");
            return null;
        }
    }

    /// <summary>Deletes the private copy, if one was made.</summary>
    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        Delete(_copyDir);
    }

    private static void Delete(string? dir)
    {
        if (dir is null)
            return;
        try
        {
            Directory.Delete(dir, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A temporary copy that cannot be removed is left to the system's cleaning of its temporary directory.
        }
    }

    /// <summary>
    /// The SQLite header's fields that decide whether the file can be read at all, checked by hand so that the
    /// error names the byte and, for a short file, the page it cuts; null when they are sound.
    /// </summary>
    internal static string? CheckHeader(string path)
    {
        long length;
        Span<byte> h = stackalloc byte[HeaderSize];
        int got;
        using (var f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete))
        {
            length = f.Length;
            got = f.ReadAtLeast(h, HeaderSize, throwOnEndOfStream: false);
        }
        if (length == 0)
            return "not a readable SQLite database (the file is empty: 0 bytes)";
        int magic = Math.Min(got, Magic.Length);
        if (!h[..magic].SequenceEqual(Magic[..magic]))
            return "not a readable SQLite database (bytes 0-15 are not the SQLite header string 'SQLite format 3')";
        if (length < HeaderSize)
            return string.Create(CultureInfo.InvariantCulture, $"truncated: the file is {length} bytes, shorter than the 100-byte SQLite header");
        int raw = BinaryPrimitives.ReadUInt16BigEndian(h[16..]);
        int pageSize = raw == 1 ? 65536 : raw;
        if (pageSize < 512 || (pageSize & (pageSize - 1)) != 0)
            return string.Create(CultureInfo.InvariantCulture, $"damaged header: bytes 16-17 give page size {raw}, not a power of two from 512 to 65536");
        if (h[18] is not (1 or 2) || h[19] is not (1 or 2))
            return string.Create(CultureInfo.InvariantCulture, $"damaged header: bytes 18-19 give file format versions {h[18]}/{h[19]} (SQLite writes 1 or 2)");
        if (pageSize - h[20] < 480)
            return string.Create(CultureInfo.InvariantCulture, $"damaged header: byte 20 reserves {h[20]} bytes of each {pageSize}-byte page");
        if (h[21] != 64 || h[22] != 32 || h[23] != 32)
            return string.Create(CultureInfo.InvariantCulture, $"damaged header: bytes 21-23 are {h[21]}/{h[22]}/{h[23]} (the payload fractions are always 64/32/32)");
        uint pages = BinaryPrimitives.ReadUInt32BigEndian(h[28..]);
        bool countValid = pages > 0 && BinaryPrimitives.ReadUInt32BigEndian(h[24..]) == BinaryPrimitives.ReadUInt32BigEndian(h[92..]);
        if (countValid && length < (long)pages * pageSize)
        {
            return string.Create(CultureInfo.InvariantCulture,
                $"truncated: the file is {length} bytes, its header says {pages} pages of {pageSize} bytes ({(long)pages * pageSize} bytes); it ends in page {length / pageSize + 1}");
        }
        if (length % pageSize != 0)
        {
            return string.Create(CultureInfo.InvariantCulture,
                $"truncated: the file is {length} bytes, not a whole number of {pageSize}-byte pages; page {length / pageSize + 1} is cut short");
        }
        return null;
    }

    /// <summary>The b-trees (<c>PRAGMA quick_check</c>) and the two tables, read-only; null when both are sound.</summary>
    private static string? CheckContent(string readPath)
    {
        string stage = "the schema (page 1)";
        try
        {
            using var conn = new SqliteConnection(SqliteDatabase.ReadOnlyConnectionString(readPath));
            conn.Open();
            var roots = new Dictionary<string, long>(StringComparer.Ordinal);
            var tables = new List<string>();
            using (var cmd = conn.CreateCommand())
            {
                cmd.CommandText = "SELECT type, name, rootpage FROM sqlite_master";
                using var reader = cmd.ExecuteReader();
                while (reader.Read())
                {
                    string type = reader.IsDBNull(0) ? "" : Convert.ToString(reader.GetValue(0), CultureInfo.InvariantCulture) ?? "";
                    string name = reader.IsDBNull(1) ? "" : Convert.ToString(reader.GetValue(1), CultureInfo.InvariantCulture) ?? "";
                    if (!reader.IsDBNull(2) && reader.GetValue(2) is long root)
                        roots[name] = root;
                    if (type == "table")
                        tables.Add(name);
                }
            }
            stage = "PRAGMA quick_check";
            using (var cmd = conn.CreateCommand())
            {
                cmd.CommandText = "PRAGMA quick_check(3)";
                var problems = new List<string>();
                using var reader = cmd.ExecuteReader();
                while (reader.Read())
                    problems.Add(Convert.ToString(reader.GetValue(0), CultureInfo.InvariantCulture) ?? "");
                if (problems.Count != 1 || problems[0] != "ok")
                {
                    string described = Describe(problems, roots);
                    // A report without a page or row number ("database disk image is malformed"): find the row.
                    if (!described.Any(char.IsDigit) && Locate(readPath) is { } where)
                        described += " " + where;
                    return "damaged: PRAGMA quick_check reports " + described;
                }
            }
            if (!tables.Contains("journal") || !tables.Contains("snapshot"))
            {
                return "not a ptactors database (it has no journal and snapshot tables; the schema on page 1 has: "
                    + (tables.Count == 0 ? "no tables" : string.Join(", ", tables.Order(StringComparer.Ordinal).Select(t => Printable(t, 40)))) + ")";
            }
            // Rows of runs without the registry's own (its persistence id damaged): not "no runs".
            using (var cmd = conn.CreateCommand())
            {
                cmd.CommandText = "SELECT (SELECT count(*) FROM journal WHERE persistence_id = $r), (SELECT min(ordering) FROM journal)";
                cmd.Parameters.AddWithValue("$r", PtActors.Persistence.Runs.RunRegistry.Id);
                using var reader = cmd.ExecuteReader();
                if (reader.Read() && reader.GetInt64(0) == 0 && !reader.IsDBNull(1))
                {
                    return string.Create(CultureInfo.InvariantCulture,
                        $"damaged: the journal holds rows (the first: journal row {reader.GetInt64(1)}) but none of the run registry (persistence id '{PtActors.Persistence.Runs.RunRegistry.Id}')");
                }
            }
            return null;
        }
        catch (SqliteException e)
        {
            string where = stage == "PRAGMA quick_check" ? Locate(readPath) ?? "during PRAGMA quick_check" : "reading " + stage;
            return string.Create(CultureInfo.InvariantCulture,
                $"damaged: SQLite error {e.SqliteErrorCode} {where}: {SqliteMessage(e)}");
        }
    }

    /// <summary>"database disk image is malformed" from "SQLite Error 11: 'database disk image is malformed'.".</summary>
    private static string SqliteMessage(SqliteException e)
    {
        string m = e.Message.ReplaceLineEndings(" ");
        var q = System.Text.RegularExpressions.Regex.Match(m, @"^SQLite Error [0-9]+: '(.*)'\.$");
        return q.Success ? q.Groups[1].Value : m;
    }

    /// <summary>
    /// Where a file quick_check cannot walk to its end is damaged: the first table whose rows (every column) cannot
    /// all be read, and the row, counted in the table's order; null when every row reads.
    /// </summary>
    private static string? Locate(string readPath)
    {
        try
        {
            using var conn = new SqliteConnection(SqliteDatabase.ReadOnlyConnectionString(readPath));
            conn.Open();
            var tables = new List<(string Name, long Root)>();
            using (var cmd = conn.CreateCommand())
            {
                cmd.CommandText = "SELECT name, rootpage FROM sqlite_master WHERE type = 'table' ORDER BY rootpage";
                using var reader = cmd.ExecuteReader();
                while (reader.Read())
                    tables.Add((reader.GetString(0), reader.IsDBNull(1) ? 0 : reader.GetInt64(1)));
            }
            foreach (var (name, root) in tables)
            {
                long row = 0;
                try
                {
                    using var cmd = conn.CreateCommand();
                    cmd.CommandText = "SELECT * FROM \"" + name.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";
                    using var reader = cmd.ExecuteReader();
                    while (reader.Read())
                    {
                        row++;
                        for (int c = 0; c < reader.FieldCount; c++)
                            reader.GetValue(c);
                    }
                }
                catch (SqliteException)
                {
                    return string.Create(CultureInfo.InvariantCulture, $"in table {Printable(name, 40)} (tree {root}) at its row {row + 1}");
                }
            }
            return null;
        }
        catch (SqliteException)
        {
            return null;
        }
    }

    /// <summary>quick_check's first problems on one line, each tree named by its table or index where the schema says.</summary>
    private static string Describe(List<string> problems, Dictionary<string, long> roots)
    {
        var parts = new List<string>();
        var lines = problems.SelectMany(p => p.Replace("*** in database main ***", "", StringComparison.Ordinal).ReplaceLineEndings("\n").Split('\n'))
            .Select(l => l.Trim()).Where(l => l.Length > 0).Take(3);
        foreach (string l in lines)
        {
            string line = l;
            var tree = System.Text.RegularExpressions.Regex.Match(line, @"^Tree ([0-9]+) ");
            if (tree.Success && long.TryParse(tree.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out long root))
            {
                foreach (var (name, r) in roots)
                {
                    if (r == root)
                    {
                        line = $"{line} (tree {root} is {Printable(name, 40)})";
                        break;
                    }
                }
            }
            else if (line.Contains("vacuum", StringComparison.OrdinalIgnoreCase))
            {
                line += " (header bytes 52-55: the largest root page, 64-67: incremental vacuum)";
            }
            else if (line.StartsWith("Freelist", StringComparison.Ordinal) || line.Contains("freelist", StringComparison.OrdinalIgnoreCase))
            {
                // The freelist is found through the header: its first trunk page (bytes 32-35) and length (36-39).
                line += " (the freelist: header bytes 32-39)";
            }
            else
            {
                // Messages naming an index or table but no page ("wrong # of entries in index X", "NUMERIC value
                // in journal.writer_uuid"): add its root page.
                var column = System.Text.RegularExpressions.Regex.Match(line, @" in ([A-Za-z_][A-Za-z0-9_]*)\.[A-Za-z0-9_]+$");
                foreach (var (name, r) in roots)
                {
                    if (name.Length > 0 && (line.EndsWith(" " + name, StringComparison.Ordinal) || (column.Success && column.Groups[1].Value == name)))
                    {
                        line = string.Create(CultureInfo.InvariantCulture, $"{line} (root page {r})");
                        break;
                    }
                }
            }
            parts.Add("'" + Printable(line, 160) + "'");
        }
        if (parts.Count == 0)
            return "a problem without a message";
        // The first problem in full, the next while the line stays short.
        string all = parts[0];
        for (int i = 1; i < parts.Count && all.Length + parts[i].Length < 240; i++)
            all += "; " + parts[i];
        return all;
    }

    private static string Printable(string s, int max)
    {
        var sb = new System.Text.StringBuilder(Math.Min(s.Length, max) + 3);
        foreach (char c in s)
        {
            if (sb.Length >= max)
            {
                sb.Append("...");
                break;
            }
            sb.Append(char.IsControl(c) ? '?' : c);
        }
        return sb.ToString();
    }
}
