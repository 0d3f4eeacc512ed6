// The file system as the configuration checks see it: injected, so the checks stay pure and tests
// can pass a fake. load.ts gives the real one.

export interface FileStatus {
  isFile: boolean;
  /** Executable by the daemon (access X_OK). */
  executable: boolean;
  /** Permission bits (st_mode & 0o7777) of the file (symlinks followed); absent in fakes: not checked. */
  mode?: number;
  /** Owner uid; absent in fakes: not checked. */
  uid?: number;
}

export interface FileAccess {
  /** Undefined when nothing is at `path`. */
  stat(path: string): FileStatus | undefined;
  /** The contents, or the reason they cannot be read. */
  read(path: string): Buffer | { error: string };
  /** The uid croft runs as (files it trusts must be owned by root or by it); absent in fakes. */
  daemonUid?: number;
}
