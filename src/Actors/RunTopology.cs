using System.Globalization;

namespace PtActors.Actors;

/// <summary>
/// The shape of a run, computed from its settings alone (no Akka): one lane per IOMMU unit; domain d is attached to
/// unit d mod <see cref="SimulationSettings.Iommus"/>; device n belongs to domain n mod
/// <see cref="SimulationSettings.Domains"/>; each domain's devices are driven by one host, and the hosts are numbered
/// in domain order (the run's host order, in which --ops shares are handed out). The coordinator creates its
/// children from it.
/// </summary>
internal sealed class RunTopology
{
    /// <summary>A domain of a lane: its name, its index in the run, its devices and the name of the host driving them.</summary>
    internal sealed record DomainPlan(string Name, int Index, int Lane, IReadOnlyList<int> Devices, string HostName, int HostIndex);

    /// <summary>One unit and the domains attached to it, in domain order.</summary>
    internal sealed record LanePlan(int Index, string UnitName, IReadOnlyList<DomainPlan> Domains);

    public IReadOnlyList<LanePlan> Lanes { get; }

    /// <summary>Every domain of the run, in domain order (the order the coordinator creates them in).</summary>
    public IReadOnlyList<DomainPlan> Domains { get; }

    /// <summary>Hosts in the whole run (one per domain).</summary>
    public int HostCount { get; }

    public RunTopology(SimulationSettings s)
    {
        var devicesOf = new List<int>[s.Domains];
        for (int d = 0; d < s.Domains; d++)
            devicesOf[d] = new List<int>();
        for (int dev = 0; dev < s.Devices; dev++)
            devicesOf[dev % s.Domains].Add(dev);

        var domainsOf = new List<DomainPlan>[s.Iommus];
        for (int u = 0; u < s.Iommus; u++)
            domainsOf[u] = new List<DomainPlan>();
        var domains = new List<DomainPlan>(s.Domains);
        for (int d = 0; d < s.Domains; d++)
        {
            int lane = d % s.Iommus;
            var plan = new DomainPlan(SimulationSettings.DomainName(d), d, lane, devicesOf[d].ToArray(), HostName(d), HostIndex: d);
            domainsOf[lane].Add(plan);
            domains.Add(plan);
        }
        Domains = domains;
        HostCount = s.Domains;

        var lanes = new List<LanePlan>(s.Iommus);
        for (int u = 0; u < s.Iommus; u++)
            lanes.Add(new LanePlan(u, UnitName(u), domainsOf[u]));
        Lanes = lanes;
    }

    public static string UnitName(int u) => "iommu" + u.ToString(CultureInfo.InvariantCulture);

    public static string HostName(int d) => "host" + d.ToString("D4", CultureInfo.InvariantCulture);
}
