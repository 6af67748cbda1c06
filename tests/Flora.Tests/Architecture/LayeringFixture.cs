// Two tiny namespaces for LayeringTests: a lower one that refers upward only inside a method body.
namespace Flora.Tests.Architecture.Fixture.High
{
    internal static class Target
    {
        public static int Value() => 42;
    }
}

namespace Flora.Tests.Architecture.Fixture.Low
{
    internal static class UsesHigh
    {
        public static int Read() => High.Target.Value() + 1;
    }
}
