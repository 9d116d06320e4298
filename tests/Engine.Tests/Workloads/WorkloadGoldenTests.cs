using System.Security.Cryptography;
using System.Text;
using PtActors.Engine.Dma;
using PtActors.Engine.Workloads;
using Xunit;

namespace PtActors.Engine.Tests.Workloads;

/// <summary>
/// Pins what the devices do: the SHA-256 of every device's operations, DMAs and counters over irregular windows (gaps
/// included), replies held for some windows, failed maps and late DMAs. The expected hashes were recorded with the
/// workloads before their memory and speed rework (per-device dictionaries, preallocated heaps), which had to keep
/// every stream identical; a change here is a change of behaviour. Re-recorded 2026-12-05 when the NVMe and NIC
/// workloads gained their queues in coherent memory and page-at-a-time DMAs, and again when a blocked NIC came to drop
/// the packets before its next action at once, without drawing their direction (changes of behaviour on purpose).
/// </summary>
public class WorkloadGoldenTests
{
    [Theory]
    [InlineData("nic", 32, 0.0, 0, 0.0, "EF86157A874989977B034711E11070B8")]
    [InlineData("nic", 4, 0.3, 2, 0.1, "B1A9232C7EF6876B75FB2C1E1C1851E8")]
    [InlineData("nic", 256, 0.05, 3, 0.0, "CA582376E09266608E25493DDE007DB8")]
    [InlineData("nvme", 32, 0.0, 0, 0.0, "D7DD71C8EF4687DAB8F1B4B7B6699BE6")]
    [InlineData("nvme", 4, 0.3, 2, 0.1, "1A2B3B35D4AA4A8F5C6D0B66BE3781CB")]
    [InlineData("nvme", 256, 0.05, 3, 0.0, "0D1314DB4D88B7EACCEA0CDE1A38444A")]
    [InlineData("gpu", 32, 0.0, 0, 0.0, "809D3726412F78D78B7BF85B97CC59A3")]
    [InlineData("gpu", 4, 0.3, 2, 0.1, "7DEDA299DAFA6238AAC468CCEA310BC9")]
    [InlineData("random", 32, 0.0, 0, 0.0, "576B2179C86C3DE7447ED2C861773D9F")]
    [InlineData("random", 4, 0.3, 2, 0.1, "AA5567C7939BA67482FAF03A3F3BAA3F")]
    [InlineData("random", 1, 0.0, 1, 0.2, "4844DEDDD4078DB84A68F998D794CF0A")]
    [InlineData("mixed", 32, 0.02, 1, 0.05, "CDA6D2E3E17E2F07589E9CCD42FD264C")]
    [InlineData("mixed", 8, 0.2, 3, 0.1, "407447F2E16F157E72DE1FC453DDC02B")]
    public void StreamsAreThoseRecorded(string kind, int inflight, double lateDma, int maxDelay, double mapFailure, string expected)
    {
        var options = new WorkloadOptions { Inflight = inflight, LateDmaProbability = lateDma, GpuRemapMeanNs = 100_000, GpuDmaIntervalNs = 250 };
        const int Devices = 8;
        var devices = new IDeviceWorkload[Devices];
        var sinks = new RecordingSink[Devices];
        var domain = new FakeDomain(maxDelay, seed: 3, mapFailure);
        for (int i = 0; i < Devices; i++)
        {
            devices[i] = WorkloadFactory.Create(kind, i, 2024, options);
            sinks[i] = new RecordingSink(domain, i);
        }
        ulong t = 5_000;
        ulong[] lengths = [100_000, 37_000, 1, 250_000, 3_000, 100_000, 64_000, 999];
        for (int w = 0; w < 160; w++)
        {
            ulong len = lengths[w % lengths.Length];
            if (w % 13 == 7)
                t += 45_000; // a gap: what falls in it runs at the next window's start
            for (int i = 0; i < Devices; i++)
            {
                sinks[i].Begin(t, t + len);
                devices[i].Generate(t, t + len, sinks[i]);
            }
            domain.EndWindow(devices);
            t += len;
        }

        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        for (int i = 0; i < Devices; i++)
        {
            foreach (var op in sinks[i].Ops)
                sha.AppendData(Encoding.ASCII.GetBytes($"{op.StampNs},{op.Id},{op.Kind},{op.Iova},{op.Paddr},{op.Size},{op.Prot};"));
            foreach (var dma in sinks[i].Dmas)
                sha.AppendData(Encoding.ASCII.GetBytes($"{dma.StampNs},{dma.Iova},{dma.Write};"));
            // The counters as recorded (the data-moved and back-pressure counters added since, all after them, are
            // checked by the workloads' own tests).
            string stats = System.Text.RegularExpressions.Regex.Replace(devices[i].Stats.ToString(), @", BytesMoved = \d+, Transfers = \d+.*? \}$", " }");
            sha.AppendData(Encoding.ASCII.GetBytes($"{devices[i].Inflight} {stats}|"));
        }
        Assert.True(sinks.Sum(s => s.Ops.Count) > 100);
        Assert.Equal(expected, Convert.ToHexString(sha.GetHashAndReset())[..32]);
    }
}
