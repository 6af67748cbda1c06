using BenchmarkDotNet.Running;

// Micro-benchmarks of the CPU kernels: dotnet run -c Release --project bench/Flora.Benchmarks -- --filter '*'
BenchmarkSwitcher.FromAssembly(typeof(Flora.Benchmarks.CpuKernels).Assembly).Run(args);
