using System.Diagnostics;
using PtActors.Engine.Hardware;
using Xunit;
using Xunit.Abstractions;

namespace PtActors.Engine.Tests.Hardware;

/// <summary>
/// The isolation campaign (issue 15, item 6): seeded random DMAs from devices that are detached, re-attached and
/// moved between domains mid-run, interleaved with maps, unmaps and clock advances, on several units, flush
/// policies and formats. Every DMA is checked on its own against a small reference of what the device's current
/// domain maps; the units' checkers must count no isolation breach, stale violation or use after free. The same
/// campaign with the deliberately broken <see cref="IommuUnitConfig.SkipContextInvalidation"/> must be caught.
/// </summary>
public sealed class IsolationCampaignTests(ITestOutputHelper output)
{
    /// <summary>The safe configurations; their DMAs sum to 10^6.</summary>
    public static TheoryData<string> SafeCases => new() { "amdv1", "x86_64", "vtdss", "riscv64" };

    [Theory]
    [MemberData(nameof(SafeCases))]
    public void NoDmaTranslatesThroughADomainItsDeviceIsNotAttachedTo(string name)
    {
        var campaign = new Campaign(Case(name, skipContext: false), strict: true);
        var figures = campaign.Run();
        Report(figures);

        Assert.Equal(0, figures.Mismatches);
        Assert.Equal(0, figures.WrongDomainTranslations);
        Assert.Equal(0, figures.Breaches);
        Assert.Equal(0, figures.StaleViolations);
        Assert.Equal(0, figures.UseAfterFree);
        // Every stale hit the units counted in a window is one the reference allowed and saw, and the reverse.
        Assert.Equal(figures.StaleSeen, figures.StaleInWindow);
        // The campaign did what it claims: the events the brief asks for happened, and every outcome occurred.
        Assert.Equal(Campaign.DmasPerCase, figures.Dmas);
        Assert.True(figures.Detaches > 1000, $"detaches {figures.Detaches}");
        Assert.True(figures.ReattachesAfterDetach > 1000, $"re-attaches {figures.ReattachesAfterDetach}");
        Assert.True(figures.Moves > 1000, $"moves {figures.Moves}");
        Assert.True(figures.Hits > 10_000 && figures.Misses > 10_000, $"hits {figures.Hits} misses {figures.Misses}");
        Assert.True(figures.NotAttachedFaults > 1000 && figures.UnmappedFaults > 1000 && figures.PermissionFaults > 100,
            $"faults not-attached {figures.NotAttachedFaults} unmapped {figures.UnmappedFaults} permission {figures.PermissionFaults}");
        Assert.True(figures.TimedFlushes > 10, $"timed flushes {figures.TimedFlushes}");
        if (figures.HasDeferredPolicy)
            Assert.True(figures.StaleSeen > 100, $"stale hits in window {figures.StaleSeen}");
    }

    [Theory]
    [InlineData("amdv1")]
    [InlineData("vtdss")]
    public void LeavingTheDeviceContextCachedIsCaughtByTheCheckerAndTheReference(string name)
    {
        var campaign = new Campaign(Case(name, skipContext: true, dmas: 100_000), strict: false);
        var figures = campaign.Run();
        Report(figures);

        Assert.True(figures.Breaches > 1000, $"breaches {figures.Breaches}");
        Assert.True(figures.WrongDomainTranslations > 100, $"wrong-domain translations {figures.WrongDomainTranslations}");
        // A wrong-domain translation is a mismatch; so is a fault where the current domain maps the IOVA and the
        // stale context's domain does not.
        Assert.True(figures.Mismatches > figures.WrongDomainTranslations);
    }

    [Fact]
    public void TheReferenceRejectsAStaleHitOutsideItsDomainsUnmapWindow()
    {
        // The reference's own check, on hand-made results: what the campaign asserts must be able to fail.
        var campaign = new Campaign(Case("x86_64", skipContext: false, dmas: 1), strict: false);
        var dom = campaign.Domains[0];
        dom.Chunks.Add((Campaign.IovaBase, 0));
        dom.Mapped[0] = true;
        dom.PageOa[0] = dom.OaBase;
        ulong iova = Campaign.IovaBase + 0x10;
        var dev = campaign.Devices[0];
        dev.Domain = dom;
        Assert.True(campaign.Expected(dev, iova, write: false, new DmaResult(DmaOutcome.Miss, dom.OaBase + 0x10)));
        Assert.False(campaign.Expected(dev, iova, write: false, new DmaResult(DmaOutcome.Miss, dom.OaBase + 0x1010)));
        Assert.False(campaign.Expected(dev, iova, write: false, new DmaResult(DmaOutcome.Stale, dom.OaBase + 0x10)));
        dom.Mapped[0] = false;
        Assert.False(campaign.Expected(dev, iova, write: false, new DmaResult(DmaOutcome.Stale, dom.OaBase + 0x10)));
        dom.Pending[0] = 1;
        Assert.True(campaign.Expected(dev, iova, write: false, new DmaResult(DmaOutcome.Stale, dom.OaBase + 0x10)));
        var other = campaign.Domains[1];
        Assert.False(campaign.Expected(dev, iova, write: false, new DmaResult(DmaOutcome.Stale, other.OaBase + 0x10)));
        dev.Domain = null;
        Assert.False(campaign.Expected(dev, iova, write: false, new DmaResult(DmaOutcome.Stale, dom.OaBase + 0x10)));
        Assert.True(campaign.Expected(dev, iova, write: false, new DmaResult(DmaOutcome.Fault, 0, FaultReason.NotAttached)));
    }

    private void Report(Figures f)
    {
        output.WriteLine(
            $"{f.Name}: {f.Dmas} DMAs checked in {f.Elapsed.TotalSeconds:F2} s ({f.Dmas / f.Elapsed.TotalSeconds:F0}/s); " +
            $"{f.Detaches} detaches, {f.ReattachesAfterDetach} re-attaches after a detach, {f.Moves} moves; " +
            $"{f.Maps} maps, {f.Unmaps} unmaps, {f.Advances} advances, {f.TimedFlushes} timed flushes; " +
            $"hits {f.Hits}, misses {f.Misses}, stale in window {f.StaleSeen}, faults not-attached {f.NotAttachedFaults} " +
            $"unmapped {f.UnmappedFaults} permission {f.PermissionFaults}; breaches {f.Breaches}, " +
            $"stale violations {f.StaleViolations}, use after free {f.UseAfterFree}, reference mismatches {f.Mismatches}, " +
            $"wrong-domain translations {f.WrongDomainTranslations}");
    }

    // ------------------------------------------------------------------ configurations

    /// <summary>One unit of a case: its policy and hardware.</summary>
    internal sealed record UnitSpec(FlushPolicySpec Policy, int Cpus, IotlbConfig Iotlb, InvalidationFlavor Flavor);

    /// <summary>One case: a format for every domain, two units on one clock, a seed.</summary>
    internal sealed record CaseSpec(string Name, PtConfig Domain, UnitSpec[] Units, int Seed, int Dmas, bool SkipContext);

    private static CaseSpec Case(string name, bool skipContext, int dmas = Campaign.DmasPerCase)
    {
        var strict = FlushPolicySpec.Strict;
        var lazy = new FlushPolicySpec(FlushPolicyKind.Lazy);
        var single = new FlushPolicySpec(FlushPolicyKind.LazySingle);
        var small = new IotlbConfig(64, 4);
        var large = new IotlbConfig();
        var qemu = new IotlbConfig(128, 1, IotlbMode.FlushAll);
        UnitSpec[] units = name switch
        {
            "amdv1" => [new(strict, 1, small, InvalidationFlavor.Amd), new(lazy, 4, large, InvalidationFlavor.Amd)],
            "x86_64" => [new(new FlushPolicySpec(FlushPolicyKind.Batch, 16), 1, large, InvalidationFlavor.Amd), new(single, 1, small, InvalidationFlavor.Amd)],
            "vtdss" => [new(lazy, 2, small, InvalidationFlavor.Vtd), new(new FlushPolicySpec(FlushPolicyKind.Batch, 4), 1, qemu, InvalidationFlavor.Vtd)],
            "riscv64" => [new(single, 1, qemu, InvalidationFlavor.Amd), new(new FlushPolicySpec(FlushPolicyKind.Batch, 1), 1, small, InvalidationFlavor.Amd)],
            _ => throw new ArgumentOutOfRangeException(nameof(name)),
        };
        var format = name switch
        {
            "amdv1" => PtFormatKind.Amdv1,
            "x86_64" => PtFormatKind.X86_64,
            "vtdss" => PtFormatKind.Vtdss,
            _ => PtFormatKind.Riscv64,
        };
        var config = PtConfig.Default(format);
        // x86_64 and amdv1 also run with the no-gaps flush, whose unmaps may sync a batch's gather part-way.
        if (format is PtFormatKind.X86_64 or PtFormatKind.Amdv1)
            config = config with { Features = config.Features | PtFeatures.FlushRangeNoGaps };
        int seed = 0x150 + (int)format;
        return new CaseSpec(name + (skipContext ? " unsafe=skip-context" : ""), config, units, seed, dmas, skipContext);
    }

    /// <summary>What one run of a case counted.</summary>
    internal sealed class Figures
    {
        public string Name = "";
        public long Dmas, Maps, Unmaps, Advances, Detaches, ReattachesAfterDetach, Moves;
        public long Hits, Misses, StaleSeen, NotAttachedFaults, UnmappedFaults, PermissionFaults;
        public long Mismatches, WrongDomainTranslations;
        public long Breaches, StaleViolations, StaleInWindow, UseAfterFree, TimedFlushes;
        public bool HasDeferredPolicy;
        public TimeSpan Elapsed;
    }

    // ------------------------------------------------------------------ the reference

    /// <summary>A domain as the reference sees it: which pages are mapped, to what, and which wait for their flush.</summary>
    internal sealed class DomainRef(IommuDomain domain, IommuUnit unit, int index, IommuProt prot)
    {
        public readonly IommuDomain Domain = domain;
        public readonly IommuUnit Unit = unit;
        public readonly int Index = index;
        public readonly IommuProt Prot = prot;
        /// <summary>Every PA this domain maps has this prefix: a PA names the domain that translated it.</summary>
        public readonly ulong OaBase = (ulong)(index + 1) << Campaign.OaDomainShift;
        public ulong NextOa;
        public readonly bool[] Mapped = new bool[Campaign.WindowPages];
        /// <summary>The PA of each page's current (or, while unmapped, last) mapping.</summary>
        public readonly ulong[] PageOa = new ulong[Campaign.WindowPages];
        /// <summary>Unmaps covering the page whose IOVA the unit has not released yet.</summary>
        public readonly int[] Pending = new int[Campaign.WindowPages];
        /// <summary>Those unmaps, oldest first.</summary>
        public readonly List<(ulong Start, ulong Last)> Records = new();
        /// <summary>The mapped chunks: first IOVA and log2 of their size in pages.</summary>
        public readonly List<(ulong Iova, int Order)> Chunks = new();
    }

    /// <summary>A device and the domain the reference says it is attached to.</summary>
    internal sealed class DeviceRef(IommuDevice device, int unit)
    {
        public readonly IommuDevice Device = device;
        public readonly int Unit = unit;
        public DomainRef? Domain;
    }

    /// <summary>One seeded run of a case.</summary>
    internal sealed class Campaign
    {
        public const int DmasPerCase = 250_000;
        public const ulong IovaBase = 0x4000_0000;
        public const int WindowPages = 16384;             // 64 MiB of IOVA, the same in every domain
        public const int OaDomainShift = 40;              // 1 TiB of PA per domain
        private const int DomainsPerUnit = 3;
        private const int DevicesPerUnit = 4;
        private const int MaxOrder = 9;                   // chunks of 4 KiB to 2 MiB

        private readonly CaseSpec _spec;
        private readonly bool _strict;
        private readonly Random _rng;
        private readonly SimClock _clock = new();
        private readonly IommuUnit[] _units;
        private readonly Dictionary<IommuDomain, DomainRef> _byDomain = new(ReferenceEqualityComparer.Instance);
        private readonly Figures _f = new();
        private string? _releaseError;

        public readonly List<DomainRef> Domains = new();
        public readonly List<DeviceRef> Devices = new();

        public Campaign(CaseSpec spec, bool strict)
        {
            _spec = spec;
            _strict = strict;
            _rng = new Random(spec.Seed);
            _f.Name = spec.Name;
            var memory = new TableMemory();      // one allocator for every domain, as in a kernel
            _units = new IommuUnit[spec.Units.Length];
            for (int u = 0; u < _units.Length; u++)
            {
                var us = spec.Units[u];
                var config = new IommuUnitConfig
                {
                    Policy = us.Policy, Cpus = us.Cpus, Iotlb = us.Iotlb, Flavor = us.Flavor,
                    SkipContextInvalidation = spec.SkipContext,
                };
                _f.HasDeferredPolicy |= us.Policy.Kind != FlushPolicyKind.Strict;
                var unit = new IommuUnit($"iommu{u}", config, _clock);
                unit.IovaReleased = Released;
                _units[u] = unit;
                for (int d = 0; d < DomainsPerUnit; d++)
                {
                    Assert.Equal(Errno.None, IommuDomain.Create(spec.Domain, memory, out var domain));
                    int index = Domains.Count;
                    // Every fourth domain is read-only, so writes through it fault on permission.
                    var prot = index % 4 == 3 ? IommuProt.Read : IommuProt.Read | IommuProt.Write;
                    var r = new DomainRef(domain!, unit, index, prot);
                    Domains.Add(r);
                    _byDomain.Add(domain!, r);
                }
                for (int i = 0; i < DevicesPerUnit; i++)
                {
                    var dev = new DeviceRef(unit.Device($"{u:x2}:{i:x2}.0"), u);
                    Devices.Add(dev);
                    var dom = Domains[u * DomainsPerUnit + i % DomainsPerUnit];
                    Assert.Equal(Errno.None, unit.Attach(dev.Device, dom.Domain));
                    dev.Domain = dom;
                }
            }
        }

        public Figures Run()
        {
            var sw = Stopwatch.StartNew();
            while (_f.Dmas < _spec.Dmas)
            {
                int op = _rng.Next(1000);
                if (op < 780)
                    Dma();
                else if (op < 860)
                    Map();
                else if (op < 930)
                    Unmap();
                else if (op < 940)
                    Detach();
                else if (op < 975)
                    Attach();
                else
                    Advance();
                if (_releaseError is not null)
                    Assert.Fail(_releaseError);
            }
            // The end of the run: every unmapped IOVA must come back once the policies drain.
            foreach (var unit in _units)
                unit.Drain();
            if (_releaseError is not null)
                Assert.Fail(_releaseError);
            foreach (var d in Domains)
            {
                if (d.Records.Count > 0)
                {
                    Assert.Fail($"{_spec.Name}: domain {d.Index} still holds {d.Records.Count} unmapped ranges after the drain; " +
                        $"the first is 0x{d.Records[0].Start:x}-0x{d.Records[0].Last:x}");
                }
            }
            sw.Stop();
            _f.Elapsed = sw.Elapsed;
            foreach (var unit in _units)
            {
                _f.Breaches += unit.Stats.IsolationBreaches;
                _f.StaleViolations += unit.Stats.StaleViolations;
                _f.StaleInWindow += unit.Stats.StaleInWindow;
                _f.UseAfterFree += unit.Stats.UseAfterFree;
                _f.TimedFlushes += unit.Stats.TimedFlushes;
            }
            return _f;
        }

        private void Dma()
        {
            var dev = Devices[_rng.Next(Devices.Count)];
            ulong iova;
            // Half an IOVA the device's own domain maps, a quarter one another domain of its unit maps, a quarter
            // anywhere in the window.
            int pick = _rng.Next(4);
            var target = pick < 2 && dev.Domain is not null ? dev.Domain : Domains[dev.Unit * DomainsPerUnit + _rng.Next(DomainsPerUnit)];
            if (target.Chunks.Count > 0 && pick < 3)
            {
                var (start, order) = target.Chunks[_rng.Next(target.Chunks.Count)];
                iova = start + ((ulong)_rng.Next(1 << order) << 12);
            }
            else
            {
                iova = IovaBase + ((ulong)_rng.Next(WindowPages) << 12);
            }
            iova += (ulong)_rng.Next(4096);
            bool write = _rng.Next(3) == 0;
            var result = _units[dev.Unit].Dma(dev.Device, iova, write);
            _f.Dmas++;
            switch (result.Outcome)
            {
                case DmaOutcome.Hit: _f.Hits++; break;
                case DmaOutcome.Miss: _f.Misses++; break;
                case DmaOutcome.Stale: _f.StaleSeen++; break;
                default:
                    if (result.Reason == FaultReason.NotAttached)
                        _f.NotAttachedFaults++;
                    else if (result.Reason == FaultReason.Unmapped)
                        _f.UnmappedFaults++;
                    else
                        _f.PermissionFaults++;
                    break;
            }
            if (Expected(dev, iova, write, result))
                return;
            _f.Mismatches++;
            bool translated = result.Outcome != DmaOutcome.Fault;
            if (translated && (dev.Domain is null || result.Pa >> OaDomainShift != dev.Domain.OaBase >> OaDomainShift))
                _f.WrongDomainTranslations++;
            if (_strict)
            {
                Assert.Fail($"{_spec.Name}: DMA #{_f.Dmas} of {dev.Device.Name} ({(write ? "write" : "read")} 0x{iova:x}, t={_clock.NowNs}ns) " +
                    $"attached to {(dev.Domain is null ? "nothing" : $"domain {dev.Domain.Index}")} gave {result}; {Describe(dev, iova)}");
            }
        }

        /// <summary>
        /// True when <paramref name="result"/> is what the device's current domain allows: a detached device
        /// faults; a mapped page translates to its PA (or faults on a write through a read-only domain); an unmapped
        /// page faults, except that while its unmap waits for the flush the unit has not yet released, a stale hit
        /// to the PA it was unmapped from is allowed. A PA another domain maps is never allowed.
        /// </summary>
        public bool Expected(DeviceRef dev, ulong iova, bool write, DmaResult result)
        {
            var dom = dev.Domain;
            if (dom is null)
                return result.Outcome == DmaOutcome.Fault && result.Reason == FaultReason.NotAttached;
            int page = (int)((iova - IovaBase) >> 12);
            bool canWrite = (dom.Prot & IommuProt.Write) != 0;
            ulong pa = dom.PageOa[page] | (iova & 0xfff);
            if (dom.Mapped[page])
            {
                if (write && !canWrite)
                    return result.Outcome == DmaOutcome.Fault && result.Reason == FaultReason.Permission;
                return result.Outcome is DmaOutcome.Hit or DmaOutcome.Miss && result.Pa == pa;
            }
            if (dom.Pending[page] > 0)
            {
                if (result.Outcome == DmaOutcome.Stale)
                    return result.Pa == pa && (canWrite || !write);
                return result.Outcome == DmaOutcome.Fault
                    && (result.Reason == FaultReason.Unmapped || (write && !canWrite && result.Reason == FaultReason.Permission));
            }
            return result.Outcome == DmaOutcome.Fault && result.Reason == FaultReason.Unmapped;
        }

        private string Describe(DeviceRef dev, ulong iova)
        {
            int page = (int)((iova - IovaBase) >> 12);
            var parts = new List<string>();
            foreach (var d in Domains)
                parts.Add($"domain {d.Index}: mapped {d.Mapped[page]} oa 0x{d.PageOa[page]:x} pending {d.Pending[page]}");
            return $"hardware domain {(dev.Device.HardwareDomain is { } hd ? _byDomain[hd].Index : -1)}; " + string.Join("; ", parts);
        }

        private void Map()
        {
            var dom = Domains[_rng.Next(Domains.Count)];
            int order = _rng.Next(MaxOrder + 1);
            int pages = 1 << order;
            int first = _rng.Next(WindowPages >> order) << order;
            // Like an IOVA allocator: only a range that is neither mapped nor still waiting for its flush.
            for (int p = first; p < first + pages; p++)
            {
                if (dom.Mapped[p] || dom.Pending[p] > 0)
                    return;
            }
            ulong size = (ulong)pages << 12;
            ulong oa = dom.OaBase | ((dom.NextOa + size - 1) & ~(size - 1) & ((1UL << OaDomainShift) - 1));
            dom.NextOa = (oa & ((1UL << OaDomainShift) - 1)) + size;
            ulong iova = IovaBase + ((ulong)first << 12);
            Assert.Equal(Errno.None, dom.Domain.IommuMap(iova, oa, size, dom.Prot));
            for (int p = 0; p < pages; p++)
            {
                dom.Mapped[first + p] = true;
                dom.PageOa[first + p] = oa + ((ulong)p << 12);
            }
            dom.Chunks.Add((iova, order));
            _f.Maps++;
        }

        private void Unmap()
        {
            var dom = Domains[_rng.Next(Domains.Count)];
            if (dom.Chunks.Count == 0)
                return;
            int i = _rng.Next(dom.Chunks.Count);
            var (iova, order) = dom.Chunks[i];
            dom.Chunks[i] = dom.Chunks[^1];
            dom.Chunks.RemoveAt(dom.Chunks.Count - 1);
            int first = (int)((iova - IovaBase) >> 12);
            int pages = 1 << order;
            ulong size = (ulong)pages << 12;
            // Recorded before the unit sees it: a strict unit releases the range before Unmap returns.
            for (int p = first; p < first + pages; p++)
            {
                dom.Mapped[p] = false;
                dom.Pending[p]++;
            }
            dom.Records.Add((iova, iova + size - 1));
            var unit = dom.Unit;
            Assert.Equal(size, unit.Unmap(dom.Domain, iova, size, cpu: _rng.Next(unit.Config.Cpus)));
            _f.Unmaps++;
        }

        /// <summary>The unit released [start, last]: every unmap recorded inside it leaves its window.</summary>
        private void Released(IommuDomain domain, ulong start, ulong last)
        {
            var dom = _byDomain[domain];
            int kept = 0, released = 0;
            var records = dom.Records;
            for (int i = 0; i < records.Count; i++)
            {
                var r = records[i];
                if (r.Start >= start && r.Last <= last)
                {
                    released++;
                    for (int p = (int)((r.Start - IovaBase) >> 12); p <= (int)((r.Last - IovaBase) >> 12); p++)
                        dom.Pending[p]--;
                }
                else
                {
                    records[kept++] = r;
                }
            }
            records.RemoveRange(kept, records.Count - kept);
            if (released == 0)
                _releaseError ??= $"{_spec.Name}: domain {dom.Index} released 0x{start:x}-0x{last:x}, which covers no unmap waiting for it";
        }

        private void Detach()
        {
            var dev = Devices[_rng.Next(Devices.Count)];
            var err = _units[dev.Unit].Detach(dev.Device);
            Assert.Equal(dev.Domain is null ? Errno.ENODEV : Errno.None, err);
            if (dev.Domain is not null)
                _f.Detaches++;
            dev.Domain = null;
        }

        private void Attach()
        {
            var dev = Devices[_rng.Next(Devices.Count)];
            var dom = Domains[dev.Unit * DomainsPerUnit + _rng.Next(DomainsPerUnit)];
            Assert.Equal(Errno.None, _units[dev.Unit].Attach(dev.Device, dom.Domain));
            if (dev.Domain is null)
                _f.ReattachesAfterDetach++;
            else if (!ReferenceEquals(dev.Domain, dom))
                _f.Moves++;
            dev.Domain = dom;
        }

        private void Advance()
        {
            int r = _rng.Next(100);
            ulong ns = r < 80 ? (ulong)_rng.Next(100_000)          // up to 100 µs
                : r < 98 ? (ulong)_rng.Next(12_000_000)             // past the flush-queue and batch timeouts
                : 1_100_000_000UL;                                  // past the single queue's 1 s
            _clock.Advance(ns);
            _f.Advances++;
        }
    }
}
