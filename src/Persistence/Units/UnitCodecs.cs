using System.Runtime.Serialization;
using PtActors.Engine.Hardware;
using PtActors.Engine.Replay;
using PtActors.Persistence.Serialization;

namespace PtActors.Persistence.Units;

/// <summary>
/// Codecs of an IOMMU unit's DMA journal (<c>simulate --record-dmas</c>): one <see cref="WindowDmas"/> event per unit
/// and window that translated any DMA. The engine type carries no marker interface: config/persistence-serialization.conf
/// binds it to the ptb serializer by type name and lists this set under <c>codec-sets.units</c>.
/// <para>
/// Notation as in <see cref="PtActors.Persistence.Domains.DomainCodecs"/>: <c>u</c> = unsigned LEB128 varint,
/// <c>z</c> = zigzag varint, <c>n × X</c> = a varint count n, then n X; differences are taken modulo 2^64 (device
/// and sequence numbers modulo 2^32), so every value round-trips whatever its order.
/// </para>
/// <para>
/// unit-dmas v1 = u Window, n × <c>run</c>. A run is a maximal stretch of consecutive DMAs of one device:
/// z (Device − the previous run's Device; the first: − 0), n × <c>dma</c> (n ≥ 1), then ⌈n/8⌉ bytes of Write flags
/// (bit i%8 of byte i/8 is the i-th DMA's; bits past n are 0). <c>dma</c> = z (StampNs − previous StampNs),
/// z (Seq − previous Seq − 1), z (Iova − previous Iova), "previous" being the DMA before it in the run (the first
/// of a run: stamp 0, Seq −1, IOVA 0). The recorder writes each device's DMAs of the window together, in sequence
/// order, so a run is one device's DMAs of the window, its sequence numbers consecutive (one byte) and its stamps
/// and IOVAs close (one to three bytes each): 6.6–7.2 bytes a DMA on the nic and mixed workloads. Every rule broken is a <see cref="SerializationException"/>
/// naming the manifest and the byte position.
/// </para>
/// </summary>
public sealed class UnitCodecs : IPtCodecSet
{
    public const string DmasManifest = "unit-dmas";

    /// <summary>Fewest bytes an encoded DMA takes (three one-byte varints).</summary>
    private const int MinDmaBytes = 3;

    /// <summary>Fewest bytes an encoded run takes (its device, its count, one DMA and one flag byte).</summary>
    private const int MinRunBytes = 2 + MinDmaBytes + 1;

    public void Register(PtCodecRegistry registry) => registry.Register<WindowDmas>(DmasManifest, 1, WriteDmas, ReadDmas);

    private static void WriteDmas(PtWriter w, WindowDmas e)
    {
        if (e.Window is < 0)
            throw new SerializationException($"PtSerializer: cannot write '{DmasManifest}': window {e.Window} is not a window number");
        w.WriteVarUInt64((ulong)e.Window);
        var items = e.Items;
        int runs = 0;
        for (int i = 0; i < items.Length; i++)
        {
            if (i == 0 || items[i].Device != items[i - 1].Device)
                runs++;
        }
        w.WriteCount(runs);
        Span<byte> flags = stackalloc byte[32];
        int previousDevice = 0;
        for (int start = 0; start < items.Length;)
        {
            int device = items[start].Device;
            int end = start + 1;
            while (end < items.Length && items[end].Device == device)
                end++;
            w.WriteVarInt64((long)device - previousDevice);
            previousDevice = device;
            w.WriteCount(end - start);
            ulong stamp = 0, iova = 0;
            uint seq = uint.MaxValue;
            for (int i = start; i < end; i++)
            {
                ref readonly var d = ref items[i];
                w.WriteVarInt64((long)(d.StampNs - stamp));
                w.WriteVarInt64((int)(d.Seq - seq - 1));
                w.WriteVarInt64((long)(d.Iova - iova));
                (stamp, seq, iova) = (d.StampNs, d.Seq, d.Iova);
            }
            // The flags, 256 DMAs (32 bytes) at a time.
            for (int i = start; i < end; i += 256)
            {
                int n = Math.Min(256, end - i);
                var chunk = flags[..((n + 7) / 8)];
                chunk.Clear();
                for (int k = 0; k < n; k++)
                {
                    if (items[i + k].Write)
                        chunk[k >> 3] |= (byte)(1 << (k & 7));
                }
                w.WriteRaw(chunk);
            }
            start = end;
        }
    }

    private static WindowDmas ReadDmas(ref PtReader r, byte version)
    {
        ulong window = r.ReadVarUInt64();
        if (window > long.MaxValue)
            throw r.Corrupt($"window {window} is not a window number");
        int runs = r.ReadCount(MinRunBytes);
        var items = new List<DmaAccess>();
        long device = 0;
        for (int run = 0; run < runs; run++)
        {
            device += r.ReadVarInt64();
            if (device is < int.MinValue or > int.MaxValue)
                throw r.Corrupt($"run {run} names device {device}, not a device number");
            int n = r.ReadCount(MinDmaBytes);
            if (n == 0)
                throw r.Corrupt($"run {run} holds no DMA");
            if (run > 0 && (int)device == items[^1].Device)
                throw r.Corrupt($"run {run} is of the same device as the run before it");
            int first = items.Count;
            ulong stamp = 0, iova = 0;
            uint seq = uint.MaxValue;
            for (int i = 0; i < n; i++)
            {
                stamp += (ulong)r.ReadVarInt64();
                long gap = r.ReadVarInt64();
                if (gap is < int.MinValue or > int.MaxValue)
                    throw r.Corrupt($"run {run} DMA {i}: sequence gap {gap} is not a 32-bit difference");
                seq = seq + 1 + (uint)(int)gap;
                iova += (ulong)r.ReadVarInt64();
                items.Add(new DmaAccess(stamp, (int)device, seq, iova, false));
            }
            var flags = r.ReadRaw((n + 7) / 8);
            for (int i = 0; i < n; i++)
            {
                if ((flags[i >> 3] & (1 << (i & 7))) != 0)
                    items[first + i] = items[first + i] with { Write = true };
            }
            if ((n & 7) != 0 && flags[^1] >> (n & 7) != 0)
                throw r.Corrupt($"run {run}: write flags set past its {n} DMAs");
        }
        return new WindowDmas((long)window, [.. items]);
    }
}
