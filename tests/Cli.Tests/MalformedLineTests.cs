using PtActors.Engine;
using Xunit;

namespace PtActors.Cli.Tests;

/// <summary>
/// Every kind of malformed line of SCRIPT-FORMAT.md ("Malformed lines"): <c>FILE:LINE: reason</c> on stderr,
/// exit 2, the lines before it printed, nothing of it or after it run. LINE counts comments and blank lines.
/// </summary>
public class MalformedLineTests
{
    // Line 5 is the line under test; lines 2 and 3 are a comment and a blank line.
    private const string Before = "domain a amdv1\n# a comment\n\nmap a 0x0 0x0 4K\n";
    private const string After = "\nmap a 0x1000 0x1000 4K\ncount a\n";
    private const string BeforeOutput = "ok pgsizes=0xfff7ffffff000\nok\n";

    public static TheoryData<string, string> Cases() => new()
    {
        // An unknown command (names are case-sensitive).
        { "frobnicate a", "unknown command 'frobnicate'" },
        { "Map a 0x2000 0x2000 4K", "unknown command 'Map'" },
        { "map_fast a 0x2000 0x2000 4K", "unknown command" },
        // A missing argument.
        { "domain", "missing argument" },
        { "domain a", "missing argument" },
        { "map a 0x2000 0x2000", "missing argument" },
        { "unmap a 0x0", "missing argument" },
        { "unmap_fast a", "missing argument" },
        { "sync", "missing argument" },
        { "phys a", "missing argument" },
        { "count", "missing argument" },
        { "top", "missing argument" },
        { "tables", "missing argument" },
        { "dirty a 0x0", "missing argument" },
        { "touch a", "missing argument" },
        // An extra argument.
        { "map a 0x2000 0x2000 4K rw rw", "extra argument 'rw'" },
        { "unmap a 0x0 4K 4K", "extra argument" },
        { "unmap_fast a 0x0 4K 4K", "extra argument" },
        { "sync a a", "extra argument" },
        { "phys a 0x0 0x0", "extra argument" },
        { "count a a", "extra argument" },
        { "top a a", "extra argument" },
        { "tables a 1", "extra argument" },
        { "dirty a 0x0 4K noclear noclear", "extra argument" },
        { "touch a 0x0 0x0", "extra argument" },
        // A bad number.
        { "map a 0xg000 0x0 4K", "bad number '0xg000'" },
        { "map a 0x 0x0 4K", "bad number '0x'" },
        { "map a 0x2000 0x0 4Q", "bad number '4Q'" },
        { "map a -4096 0x0 4K", "bad number" },
        { "map a +4096 0x0 4K", "bad number" },
        { "map a 4KK 0x0 4K", "bad number" },
        { "map a 1.5K 0x0 4K", "bad number" },
        { "map a 0x2000 0x0 0x1_000", "bad number" },
        { "phys a K", "bad number 'K'" },
        { "phys a 0xK", "bad number" },
        { "phys a 0b101", "bad number" },
        { "touch a 1e3", "bad number" },
        { "unmap a 0x0 4 K", "extra argument 'K'" },
        { "domain b amdv1 vasz=x", "bad number 'x'" },
        { "domain b amdv1 vasz=", "bad number ''" },
        // Above 2^64-1, before or after the suffix.
        { "map a 0x10000000000000000 0x0 4K", "above 2^64-1" },
        { "map a 18446744073709551616 0x0 4K", "above 2^64-1" },
        { "map a 99999999999999999999999 0x0 4K", "above 2^64-1" },
        { "unmap a 0x0 16384P", "above 2^64-1" },
        { "unmap a 0x0 0x40000000000000K", "above 2^64-1" },
        { "unmap a 0x0 0x4000000000000M", "above 2^64-1" },
        { "dirty a 0x0 0x1000000000000000000000000", "above 2^64-1" },
        { "domain b amdv1 level=18446744073709551616", "above 2^64-1" },
        // An unknown FORMAT.
        { "domain b arm64", "unknown format 'arm64'" },
        { "domain b AMDV1", "unknown format 'AMDV1'" },
        { "domain b x86-64", "unknown format" },
        // A key the format does not accept.
        { "domain b amdv1 sign_extend=1", "amdv1 does not accept key 'sign_extend'" },
        { "domain b amdv1 napot=0", "amdv1 does not accept key 'napot'" },
        { "domain b x86_64 level=3", "x86_64 does not accept key 'level'" },
        { "domain b x86_64 napot=1", "x86_64 does not accept key 'napot'" },
        { "domain b vtdss sign_extend=0", "vtdss does not accept key 'sign_extend'" },
        { "domain b vtdss level=2", "vtdss does not accept key 'level'" },
        { "domain b vtdss napot=1", "vtdss does not accept key 'napot'" },
        { "domain b riscv64 level=2", "riscv64 does not accept key 'level'" },
        { "domain b amdv1 foo=1", "does not accept key 'foo'" },
        { "domain b amdv1 VASZ=48", "does not accept key 'VASZ'" },
        { "domain b amdv1 vasz", "not key=value" },
        { "domain b amdv1 =48", "not key=value" },
        // A bad value for flush, sign_extend or napot.
        { "domain b amdv1 flush=all", "bad value 'all' for flush" },
        { "domain b amdv1 flush=", "bad value '' for flush" },
        { "domain b vtdss flush=Range", "bad value 'Range' for flush" },
        { "domain b x86_64 sign_extend=2", "bad value '2' for sign_extend" },
        { "domain b riscv64 sign_extend=yes", "bad value 'yes' for sign_extend" },
        { "domain b riscv64 napot=true", "bad value 'true' for napot" },
        // A PROT letter outside rwcnmp.
        { "map a 0x2000 0x2000 4K rwx", "bad PROT letter 'x'" },
        { "map a 0x2000 0x2000 4K R", "bad PROT letter 'R'" },
        { "map a 0x2000 0x2000 4K r-w", "bad PROT letter '-'" },
        // A dirty flag other than noclear.
        { "dirty a 0x0 4K clear", "bad dirty flag 'clear'" },
        { "dirty a 0x0 4K NOCLEAR", "bad dirty flag 'NOCLEAR'" },
        { "dirty a 0x0 4K noclear=1", "bad dirty flag" },
        // A domain name that no domain line has created.
        { "map b 0x0 0x0 4K", "unknown domain 'b'" },
        { "unmap b 0x0 4K", "unknown domain 'b'" },
        { "unmap_fast b 0x0 4K", "unknown domain 'b'" },
        { "sync b", "unknown domain 'b'" },
        { "phys b 0x0", "unknown domain 'b'" },
        { "count A", "unknown domain 'A'" },
        { "top b", "unknown domain 'b'" },
        { "tables b", "unknown domain 'b'" },
        { "dirty b 0x0 4K", "unknown domain 'b'" },
        { "touch b 0x0", "unknown domain 'b'" },
        // The IOMMU, device and time commands.
        { "iommu", "missing argument" },
        { "iommu u0 iotlb=0", "bad value '0' for iotlb" },
        { "iommu u0 iotlb=10 ways=4", "cannot have 4 ways" },
        { "iommu u0 mode=fifo", "bad value 'fifo' for mode" },
        { "iommu u0 policy=eager", "bad value 'eager' for policy" },
        { "iommu u0 policy=batch:0", "bad value 'batch:0' for policy" },
        { "iommu u0 policy=passthrough", "bad value 'passthrough' for policy" },
        { "iommu u0 cpus=0", "bad value '0' for cpus" },
        { "iommu u0 inv_ns=fast", "bad number 'fast'" },
        { "iommu u0 color=red", "iommu does not accept key 'color'" },
        { "iommu u0 policy", "option 'policy' is not key=value" },
        { "attach dev0 u9 a", "unknown IOMMU unit 'u9'" },
        { "attach dev0", "missing argument" },
        { "detach", "missing argument" },
        { "detach dev0 dev1", "extra argument" },
        { "dma dev0 0x0", "missing argument" },
        { "dma dev0 0x0 x", "bad DMA direction 'x'" },
        { "dma dev0 0xz r", "bad number" },
        { "advance 10", "bad duration '10'" },
        { "advance ms", "bad duration 'ms'" },
        { "advance -1ms", "bad duration" },
        { "advance 1.5ms", "bad duration" },
        { "advance 18446744073709551615s", "above 2^64-1 ns" },
        { "stats u9", "unknown IOMMU unit 'u9'" },
        { "stats", "missing argument" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void MalformedLineStopsTheRunWithFileLineReason(string line, string reason)
    {
        var result = ScriptHarness.Run(Before + line + After, "bad.pts");

        Assert.Equal(2, result.ExitCode);
        Assert.Equal(BeforeOutput, result.Stdout);
        Assert.StartsWith("bad.pts:5: ", result.Stderr, StringComparison.Ordinal);
        Assert.Contains(reason, result.Stderr, StringComparison.Ordinal);
        Assert.EndsWith("\n", result.Stderr, StringComparison.Ordinal);
        Assert.Single(result.Stderr.TrimEnd('\n').Split('\n'));

        // Nothing of the malformed line nor of the lines after it ran: domain a still holds one 4K page.
        var a = result.Runner.Domains["a"];
        Span<long> buckets = stackalloc long[64];
        Assert.Equal(1, a.CountLeaves(buckets));
        Assert.False(result.Runner.Domains.ContainsKey("b"));
        Assert.False(a.HasPendingGather);
    }

    [Fact]
    public void AFailedDomainLineCreatesNoName()
    {
        const string script = "domain b amdv1 level=0\n\n# b does not exist\ncount b\ncount b\n";
        var result = ScriptHarness.Run(script);
        Assert.Equal(2, result.ExitCode);
        Assert.Equal("error EINVAL\n", result.Stdout);
        Assert.Equal("test.pts:4: unknown domain 'b' (no domain line has created it)\n", result.Stderr);
    }

    [Fact]
    public void AFailedDomainLineKeepsTheEarlierName()
    {
        const string script = "domain b amdv1\ndomain b amdv1 level=0\ncount b\n";
        var result = ScriptHarness.Run(script);
        Assert.Equal(0, result.ExitCode);
        Assert.Equal("ok pgsizes=0xfff7ffffff000\nerror EINVAL\nentries 0\n", result.Stdout);
    }

    [Fact]
    public void MalformedFirstLinePrintsNothing()
    {
        var result = ScriptHarness.Run("bogus\ndomain a amdv1\n", "-");
        Assert.Equal(2, result.ExitCode);
        Assert.Equal("", result.Stdout);
        Assert.Equal("-:1: unknown command 'bogus'\n", result.Stderr);
    }

    [Fact]
    public void OnlyTheFirstMalformedLineIsReported()
    {
        var result = ScriptHarness.Run("domain a vtdss\nmap a 0x0 0x0 4K rwx\nmap a 0x0 0x0 4K rwz\n");
        Assert.Equal(2, result.ExitCode);
        Assert.Equal("ok pgsizes=0x40201000\n", result.Stdout);
        Assert.Equal("test.pts:2: bad PROT letter 'x' in 'rwx' (letters are rwcnmp)\n", result.Stderr);
        Assert.False(result.Runner.Domains["a"].TryIovaToPhys(0, out _) == Errno.None);
    }

    [Fact]
    public void LinesCountCrLfAndAFinalLineWithoutNewline()
    {
        var result = ScriptHarness.Run("domain a amdv1\r\n# comment\r\n\r\nsync a\r\nsync a a");
        Assert.Equal(2, result.ExitCode);
        Assert.Equal("ok pgsizes=0xfff7ffffff000\nflush none freed=0\n", result.Stdout);
        Assert.StartsWith("test.pts:5: extra argument 'a'", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void CommentsAndBlankLinesAloneRunNothing()
    {
        var result = ScriptHarness.Run("# nothing\n\n   \t\n# map a 0 0 4K\n");
        Assert.Equal(0, result.ExitCode);
        Assert.Equal("", result.Stdout);
        Assert.Equal("", result.Stderr);
    }

    [Fact]
    public void ACommentMayFollowACommandWithoutSpace()
    {
        var result = ScriptHarness.Run("domain a amdv1#comment\ncount a# more\n");
        Assert.Equal(0, result.ExitCode);
        Assert.Equal("ok pgsizes=0xfff7ffffff000\nentries 0\n", result.Stdout);
    }
}
