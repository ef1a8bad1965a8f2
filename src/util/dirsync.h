/* dirsync.h - make a directory's entries durable: fsync of the directory itself, the
 * step after a create, rename or link that must survive a crash. */
#ifndef TERN_DIRSYNC_H
#define TERN_DIRSYNC_H

/* fsync the directory dir. 0 or -errno. */
int dirsync(const char *dir);
/* fsync the directory that holds path ("a/b" -> "a", "b" -> ".", "/b" -> "/").
 * 0 or -errno (-ENAMETOOLONG if path does not fit PATH_MAX). */
int dirsync_parent(const char *path);

#endif
