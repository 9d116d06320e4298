using System.Text;

namespace PtActors.Actors;

/// <summary>
/// <c>simulate --ack-log FILE</c>: the ids of the operations acknowledged to the devices, appended as the run goes,
/// so that a crash campaign can check that everything acknowledged survived (<c>verify --ack-log</c>). Domains add
/// the ids of the results they sent; the coordinator writes them out once a lane's window is committed (one
/// write to the operating system per lane and window: what was written survives a SIGKILL of the process).
/// Thread-safe.
/// </summary>
/// <remarks>
/// Format (appended to): a run section is the byte 0, u length, the run id in UTF-8; then records, each u (domain
/// index + 1), u count, count × z (id − previous id of the record; the first: − 0). u = unsigned LEB128, z = zigzag
/// LEB128. A record cut short (the process died while writing it) ends the file's readable part.
/// </remarks>
public sealed class AckLog : IDisposable
{
    private readonly FileStream _file;
    private readonly MemoryStream _buffer = new();
    private readonly object _gate = new();

    private AckLog(FileStream file, string runId)
    {
        _file = file;
        _buffer.WriteByte(0);
        var id = Encoding.UTF8.GetBytes(runId);
        WriteU(_buffer, (ulong)id.Length);
        _buffer.Write(id);
        Flush();
    }

    /// <summary>Opens <paramref name="path"/> for appending a section of run <paramref name="runId"/>.</summary>
    public static AckLog Open(string path, string runId)
        => new(new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.Read), runId);

    /// <summary>Domain <paramref name="domain"/> sent the results of these operations.</summary>
    public void Acknowledged(int domain, ReadOnlySpan<long> ids)
    {
        if (ids.IsEmpty)
            return;
        lock (_gate)
        {
            WriteU(_buffer, (ulong)domain + 1);
            WriteU(_buffer, (ulong)ids.Length);
            long previous = 0;
            foreach (long id in ids)
            {
                long delta = unchecked(id - previous);
                WriteU(_buffer, (ulong)((delta << 1) ^ (delta >> 63)));
                previous = id;
            }
        }
    }

    /// <summary>Hands what was added to the operating system (not to the disk: a process crash must not lose it).</summary>
    public void Flush()
    {
        lock (_gate)
        {
            if (_buffer.Length == 0)
                return;
            _file.Write(_buffer.GetBuffer(), 0, (int)_buffer.Length);
            _file.Flush(flushToDisk: false);
            _buffer.SetLength(0);
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        Flush();
        _file.Dispose();
    }

    private static void WriteU(Stream s, ulong v)
    {
        while (v >= 0x80)
        {
            s.WriteByte((byte)(v | 0x80));
            v >>= 7;
        }
        s.WriteByte((byte)v);
    }

    /// <summary>What an ack log holds for one run: per domain index, the acknowledged ids.</summary>
    /// <param name="Offset">The byte offset of the section's start in the file.</param>
    /// <param name="FirstRecord">Per domain index, the byte offset of its first record in the section.</param>
    public sealed record Section(string RunId, Dictionary<int, List<long>> ByDomain, long Count, long Offset = 0, Dictionary<int, long>? FirstRecord = null);

    /// <summary>
    /// Reads every section of <paramref name="path"/>. A record cut short at the end (a crash while writing) is
    /// dropped and counted in <paramref name="tornBytes"/>; anything else that does not follow the format is an
    /// <see cref="InvalidDataException"/> naming the byte offset.
    /// </summary>
    public static List<Section> Read(string path, out long tornBytes)
    {
        var data = File.ReadAllBytes(path);
        var sections = new List<Section>();
        Section? current = null;
        int pos = 0;
        tornBytes = 0;
        while (pos < data.Length)
        {
            int start = pos;
            if (!TryReadU(data, ref pos, out ulong head))
            {
                tornBytes = data.Length - start;
                break;
            }
            if (head == 0)
            {
                if (!TryReadU(data, ref pos, out ulong len))
                {
                    tornBytes = data.Length - start;
                    break;
                }
                if (len > MaxRunIdBytes)
                    throw new InvalidDataException($"{path}: byte {start}: a run section whose id is {len} bytes long (at most {MaxRunIdBytes})");
                if (pos + (int)len > data.Length)
                {
                    tornBytes = data.Length - start;
                    break;
                }
                current = new Section(Encoding.UTF8.GetString(data, pos, (int)len), new Dictionary<int, List<long>>(), 0, start, new Dictionary<int, long>());
                sections.Add(current);
                pos += (int)len;
                continue;
            }
            if (current is null)
                throw new InvalidDataException($"{path}: byte {start}: a record before any run section (not an ack log?)");
            if (head - 1 > int.MaxValue)
                throw new InvalidDataException($"{path}: byte {start}: domain index {head - 1} is out of range");
            if (!TryReadU(data, ref pos, out ulong count))
            {
                tornBytes = data.Length - start;
                break;
            }
            if (count > (ulong)(data.Length - pos))
            {
                tornBytes = data.Length - start;
                break;
            }
            var ids = new List<long>((int)count);
            long previous = 0;
            bool torn = false;
            for (ulong i = 0; i < count; i++)
            {
                if (!TryReadU(data, ref pos, out ulong z))
                {
                    torn = true;
                    break;
                }
                long delta = (long)(z >> 1) ^ -(long)(z & 1);
                previous = unchecked(previous + delta);
                ids.Add(previous);
            }
            if (torn)
            {
                tornBytes = data.Length - start;
                break;
            }
            int domain = (int)(head - 1);
            if (!current.ByDomain.TryGetValue(domain, out var list))
            {
                current.ByDomain[domain] = list = new List<long>();
                current.FirstRecord?.TryAdd(domain, start);
            }
            list.AddRange(ids);
            sections[^1] = current = current with { Count = current.Count + ids.Count };
        }
        return sections;
    }

    /// <summary>The longest run id a section can hold (longer lengths are damage, not a record cut short).</summary>
    public const int MaxRunIdBytes = 256;

    private static bool TryReadU(byte[] data, ref int pos, out ulong value)
    {
        value = 0;
        for (int shift = 0; shift < 64; shift += 7)
        {
            if (pos >= data.Length)
                return false;
            byte b = data[pos++];
            value |= (ulong)(b & 0x7f) << shift;
            if ((b & 0x80) == 0)
                return true;
        }
        throw new InvalidDataException($"a varint longer than ten bytes ends at byte {pos}");
    }
}
