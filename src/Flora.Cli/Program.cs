using Flora.Cli;

return FloraCli.Run(args);
