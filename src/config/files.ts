// The file system as the configuration checks see it: injected, so the checks stay pure and tests
// can pass a fake. load.ts gives the real one.

export interface FileStatus {
  isFile: boolean;
  /** Executable by the daemon (access X_OK). */
  executable: boolean;
}

export interface FileAccess {
  /** Undefined when nothing is at `path`. */
  stat(path: string): FileStatus | undefined;
  /** The contents, or the reason they cannot be read. */
  read(path: string): Buffer | { error: string };
}
