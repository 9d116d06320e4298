using System.Runtime.Serialization;
using PtActors.Engine.Hardware;
using PtActors.Engine.Replay;
using PtActors.Persistence.Serialization;
using PtActors.Persistence.Units;
using Xunit;

namespace PtActors.Persistence.Tests;

/// <summary>The <c>unit-dmas</c> event of <c>simulate --record-dmas</c>: round trips, its version byte, damaged input.</summary>
public class UnitCodecTests
{
    private const string Manifest = UnitCodecs.DmasManifest;

    /// <summary>The registry exactly as the shipped HOCON configures it.</summary>
    private static readonly PtCodecRegistry Registry =
        PtSerializer.BuildRegistry(PersistenceConfig.InMemory().GetConfig("akka.actor.serialization-settings.ptb"));

    private static WindowDmas RoundTrip(WindowDmas e)
    {
        var back = Assert.IsType<WindowDmas>(Registry.Deserialize(Registry.Serialize(e), Manifest));
        Assert.Equal(e.Window, back.Window);
        Assert.Equal(e.Items, back.Items);
        return back;
    }

    /// <summary>A window of a few devices' DMAs, as the recorder writes it (by device, then sequence number).</summary>
    private static WindowDmas Typical(int devices, int perDevice, long window = 7)
    {
        var rng = new Random(3);
        var items = new List<DmaAccess>();
        for (int d = 0; d < devices; d++)
        {
            ulong iova = 0x10_0000UL * (ulong)(d + 1);
            for (int k = 0; k < perDevice; k++)
                items.Add(new DmaAccess((ulong)window * 100_000 + (ulong)rng.Next(100_000), d * 3, (uint)(1000 + k), iova + (ulong)rng.Next(8192), rng.Next(2) == 0));
        }
        return new WindowDmas(window, [.. items]);
    }

    [Fact]
    public void The_manifest_is_registered_with_version_1_first()
    {
        var bytes = Registry.Serialize(new WindowDmas(0, []));
        Assert.Equal([1, 0, 0], bytes); // version byte, window 0, no runs
        Assert.Equal(Manifest, Registry.ManifestFor(new WindowDmas(0, [])));
        RoundTrip(new WindowDmas(0, []));
    }

    [Fact]
    public void Typical_windows_round_trip_in_under_seven_bytes_a_dma()
    {
        var e = Typical(devices: 16, perDevice: 64);
        var bytes = Registry.Serialize(e);
        RoundTrip(e);
        double perDma = (double)bytes.Length / e.Items.Length;
        Assert.True(perDma < 7, $"{perDma:0.00} bytes a DMA");
    }

    [Fact]
    public void Extreme_values_and_any_order_round_trip()
    {
        ulong[] edges = [0, 1, 127, 128, 0xfff, 0xffff_ffff, 1UL << 63, ulong.MaxValue - 1, ulong.MaxValue];
        var items = new List<DmaAccess>();
        int i = 0;
        foreach (ulong a in edges)
        {
            foreach (ulong b in edges)
            {
                int device = (i % 5) switch { 0 => int.MinValue, 1 => int.MaxValue, 2 => 0, 3 => -1, _ => 7 };
                uint seq = (i % 3) switch { 0 => uint.MaxValue, 1 => 0, _ => (uint)i };
                items.Add(new DmaAccess(a, device, seq, b, (i & 1) == 0));
                i++;
            }
        }
        RoundTrip(new WindowDmas(long.MaxValue, [.. items]));
        // Runs of one device longer than one flag chunk (256 DMAs), with flags set up to the last bit.
        var run = Enumerable.Range(0, 600).Select(k => new DmaAccess((ulong)k, 5, (uint)k, (ulong)k * 64, k % 3 == 0 || k == 599)).ToArray();
        RoundTrip(new WindowDmas(1, run));
    }

    [Fact]
    public void A_negative_window_is_refused_when_writing()
    {
        var e = Assert.Throws<SerializationException>(() => Registry.Serialize(new WindowDmas(-1, [])));
        Assert.Contains("cannot write 'unit-dmas'", e.Message);
    }

    [Fact]
    public void Damaged_payloads_are_refused_with_a_clear_message()
    {
        void Rejects(byte[] bytes, string message)
        {
            var e = Assert.Throws<SerializationException>(() => Registry.Deserialize(bytes, Manifest));
            Assert.Contains(message, e.Message);
            Assert.Null(e.InnerException);   // a message of ours, not another exception type wrapped
        }
        Rejects([], "empty payload (no version byte)");
        Rejects([2, 0, 0], "has format version 2; this build reads versions 1..1");
        Rejects([0, 0, 0], "has format version 0");
        Rejects([1, 0, 0, 0], "corrupt 'unit-dmas' payload at byte 3 of 4: 1 unread trailing bytes");
        Rejects([1, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0x07], "count");                       // runs: int.MaxValue
        Rejects([1, 0, 1, 0, 0, 0, 0, 0, 0, 0], "run 0 holds no DMA");
        Rejects([1, 0, 1, 0, 1, 0, 0, 0, 0x02], "write flags set past its 1 DMAs");
        Rejects([1, 0, 1, 0x80, 0x80, 0x80, 0x80, 0x10, 1, 0, 0, 0, 0], "not a device number"); // device 2^32
        Rejects([1, 0, 1, 0, 1, 0, 0x80, 0x80, 0x80, 0x80, 0x10, 0, 0], "not a 32-bit difference");
        Rejects([1, 0, 2, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0], "same device as the run before it");
        Rejects([1, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01, 0], "is not a window number");
    }

    [Fact]
    public void Every_truncation_and_random_damage_is_a_serialization_exception()
    {
        var bytes = Registry.Serialize(Typical(devices: 3, perDevice: 20));
        for (int len = 0; len < bytes.Length; len++)
            Assert.Throws<SerializationException>(() => Registry.Deserialize(bytes[..len], Manifest));
        var rng = new Random(5);
        for (int n = 0; n < 2000; n++)
        {
            var damaged = (byte[])bytes.Clone();
            for (int k = rng.Next(1, 4); k > 0; k--)
                damaged[rng.Next(damaged.Length)] = (byte)rng.Next(256);
            try
            {
                Registry.Deserialize(damaged, Manifest);   // some damage still decodes (other values): that is fine
            }
            catch (SerializationException)
            {
                // Refused with our message: fine.
            }
        }
    }
}
