#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <regex>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#include "core/Error.h"
#include "io/AtomicFile.h"
#include "io/Checksum.h"
#include "io/Repository.h"
#include "tests/support/TestSupport.h"

using namespace drp;
namespace fs = std::filesystem;

namespace {

DatasetType calexpType() {
    return {"calexp", StorageClass::Fits, "{run}/calexp/{band}/{visit}/calexp_{visit}_{detector}.fits",
            {Dimension::Band, Dimension::Visit, Dimension::Detector}};
}

DatasetType srcType() {
    return {"src", StorageClass::Hdf5, "{run}/{datasetType}/{visit}/src_{visit}_{detector}.h5",
            {Dimension::Visit, Dimension::Detector}};
}

DataId vd(int visit, int detector) { return DataId{{"band", "r"}, {"visit", visit}, {"detector", detector}}; }

std::string readFile(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), {});
}

/// Every regular file under `dir` (relative paths), temp files included.
std::vector<std::string> allFiles(const fs::path& dir) {
    std::vector<std::string> out;
    for (const auto& e : fs::recursive_directory_iterator(dir))
        if (e.is_regular_file()) out.push_back(e.path().lexically_relative(dir).string());
    std::sort(out.begin(), out.end());
    return out;
}

std::vector<fs::path> manifestFiles(const fs::path& root) {
    std::vector<fs::path> out;
    for (const auto& e : fs::directory_iterator(root / "_manifest")) out.push_back(e.path());
    std::sort(out.begin(), out.end());
    return out;
}

}  // namespace

TEST(AtomicFile, CommitPublishesAndDestructorCleansUp) {
    test::TempDir dir;
    fs::path dest = dir / "out.txt";
    {
        AtomicFile f(dest);
        EXPECT_EQ(f.tempPath().parent_path(), dest.parent_path());
        EXPECT_TRUE(AtomicFile::isTempName(f.tempPath()));
        std::ofstream(f.tempPath()) << "hello";
        EXPECT_FALSE(fs::exists(dest));
        f.commit();
        EXPECT_TRUE(f.committed());
        EXPECT_FALSE(fs::exists(f.tempPath()));
    }
    EXPECT_EQ(readFile(dest), "hello");
    {
        AtomicFile f(dest);
        std::ofstream(f.tempPath()) << "half written";
        // no commit: destructor removes the temp file, destination keeps its old content
    }
    EXPECT_EQ(readFile(dest), "hello");
    EXPECT_EQ(allFiles(dir.path()), (std::vector<std::string>{"out.txt"}));
    {
        AtomicFile f(dest);
        EXPECT_THROW(f.commit(), IoError);  // nothing written
        AtomicFile g(dest);
        std::ofstream(g.tempPath()) << "new";
        EXPECT_THROW(g.commitNoReplace(), ConflictError);
        EXPECT_EQ(readFile(dest), "hello");
        g.commit();  // replacing is allowed with commit()
    }
    EXPECT_EQ(readFile(dest), "new");
    EXPECT_EQ(allFiles(dir.path()), (std::vector<std::string>{"out.txt"}));
    AtomicFile a(dest), b(dest);
    EXPECT_NE(a.tempPath(), b.tempPath());
    EXPECT_FALSE(AtomicFile::isTempName(dest));
}

TEST(Repository, CreateOpenAndDatasetTypes) {
    test::TempDir dir;
    fs::path root = dir / "repo";
    EXPECT_THROW(Repository::open(root), NotFoundError);
    Repository repo = Repository::create(root);
    Repository again = Repository::create(root);  // idempotent
    repo.registerDatasetType(calexpType());
    repo.registerDatasetType(calexpType());  // identical: fine
    again.registerDatasetType(srcType());
    DatasetType other = calexpType();
    other.pathTemplate = "{run}/elsewhere/{band}/{visit}/{detector}.fits";
    EXPECT_THROW(repo.registerDatasetType(other), ConflictError);
    DatasetType bad = calexpType();
    bad.name = "bad";
    bad.pathTemplate = "{visit}/{band}/{detector}.fits";  // no {run}
    EXPECT_THROW(repo.registerDatasetType(bad), ConfigError);
    bad.pathTemplate = "{run}/{visit}/{band}/{detector";  // unbalanced
    EXPECT_THROW(repo.registerDatasetType(bad), ConfigError);
    bad.pathTemplate = "{run}/../{visit}/{band}/{detector}";
    EXPECT_THROW(repo.registerDatasetType(bad), ConfigError);
    bad.pathTemplate = "/abs/{run}/{band}/{visit}/{detector}";
    EXPECT_THROW(repo.registerDatasetType(bad), ConfigError);
    bad.pathTemplate = "{run}/{band}/{visit}/{detector}/{tract}";
    EXPECT_THROW(repo.registerDatasetType(bad), ConfigError);
    Repository reopened = Repository::open(root);
    auto types = reopened.datasetTypes();
    ASSERT_EQ(types.size(), 2u);
    EXPECT_EQ(types[0], calexpType());
    EXPECT_EQ(types[1], srcType());
    EXPECT_THROW(reopened.datasetType("nope"), NotFoundError);
    EXPECT_EQ(calexpType().expand("run1", vd(12, 3)), "run1/calexp/r/12/calexp_12_3.fits");
}

TEST(Repository, PutGetRoundTripRecordsSizeAndChecksum) {
    test::TempDir dir;
    Repository repo = Repository::create(dir / "repo");
    repo.registerDatasetType(calexpType());
    const std::string payload(12345, 'x');
    DataId extra = vd(12, 3);
    extra.set(Dimension::Instrument, "LSSTCam");  // extra dimensions are dropped
    DatasetRecord r = repo.putBytes("calexp", "u/me/run1", extra, payload, "quantum-7");
    EXPECT_EQ(r.relativePath, "u/me/run1/calexp/r/12/calexp_12_3.fits");
    EXPECT_EQ(r.dataId, vd(12, 3));
    EXPECT_EQ(r.size, payload.size());
    EXPECT_EQ(r.checksum, Checksum::ofString(payload).hex());
    EXPECT_EQ(r.producer, "quantum-7");
    EXPECT_TRUE(std::regex_match(r.timestamp, std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)"))) << r.timestamp;
    fs::path p = repo.getPath("calexp", "u/me/run1", vd(12, 3));
    EXPECT_EQ(p, dir / "repo" / r.relativePath);
    EXPECT_EQ(readFile(p), payload);
    EXPECT_TRUE(repo.exists("calexp", "u/me/run1", vd(12, 3)));
    EXPECT_FALSE(repo.exists("calexp", "u/me/run1", vd(12, 4)));
    EXPECT_THROW(repo.getPath("calexp", "u/me/run1", vd(12, 4)), NotFoundError);
    EXPECT_EQ(repo.verify("calexp", "u/me/run1", vd(12, 3)), VerifyStatus::Ok);

    // The manifest on disk holds the record (size and checksum), and a fresh open finds it.
    auto mf = manifestFiles(dir / "repo");
    ASSERT_EQ(mf.size(), 1u);
    std::string text = readFile(mf[0]);
    EXPECT_NE(text.find("\"size\":12345"), std::string::npos) << text;
    EXPECT_NE(text.find(r.checksum), std::string::npos) << text;
    Repository fresh = Repository::open(dir / "repo");
    auto found = fresh.find("calexp", "u/me/run1", vd(12, 3));
    ASSERT_TRUE(found.has_value());
    EXPECT_EQ(*found, r);
    EXPECT_EQ(fresh.runs(), (std::vector<std::string>{"u/me/run1"}));

    // Missing dimensions, unsafe values, bad runs and unknown types are refused.
    EXPECT_THROW(repo.putBytes("calexp", "run1", DataId{{"visit", 1}}, "x"), LogicError);
    EXPECT_THROW(repo.putBytes("calexp", "run1", DataId{{"band", "../up"}, {"visit", 1}, {"detector", 1}}, "x"),
                 LogicError);
    EXPECT_THROW(repo.putBytes("calexp", "run1", DataId{{"band", "a/b"}, {"visit", 1}, {"detector", 1}}, "x"),
                 LogicError);
    for (const char* badRun : {"", "/abs", "a//b", "../x", "_manifest", "a/.hidden", "sp ace"})
        EXPECT_THROW(repo.putBytes("calexp", badRun, vd(1, 1), "x"), LogicError) << badRun;
    EXPECT_THROW(repo.putBytes("nope", "run1", vd(1, 1), "x"), NotFoundError);
    EXPECT_EQ(repo.stats().datasets, 1u);
}

TEST(Repository, ConflictsAreRefusedBeforeAndAfterWriting) {
    test::TempDir dir;
    Repository repo = Repository::create(dir / "repo");
    repo.registerDatasetType(calexpType());
    repo.putBytes("calexp", "run1", vd(1, 1), "first");
    bool writerCalled = false;
    EXPECT_THROW(repo.put("calexp", "run1", vd(1, 1), [&](const fs::path&) { writerCalled = true; }), ConflictError);
    EXPECT_FALSE(writerCalled) << "a known conflict is refused before any writing";
    EXPECT_EQ(readFile(repo.getPath("calexp", "run1", vd(1, 1))), "first");
    repo.putBytes("calexp", "run2", vd(1, 1), "other run is fine");

    // Two pending writes of the same dataset: the second commit loses, its file is not published.
    auto a = repo.prepare("calexp", "run1", vd(2, 2));
    auto b = repo.prepare("calexp", "run1", vd(2, 2));
    std::ofstream(a.tempPath()) << "A";
    std::ofstream(b.tempPath()) << "B";
    a.commit();
    EXPECT_THROW(b.commit(), ConflictError);
    EXPECT_EQ(readFile(repo.getPath("calexp", "run1", vd(2, 2))), "A");

    // A file sitting at a dataset's path without a manifest entry (an orphan) is not overwritten.
    fs::path orphan = dir / "repo" / calexpType().expand("run1", vd(3, 3));
    fs::create_directories(orphan.parent_path());
    std::ofstream(orphan) << "orphan";
    EXPECT_EQ(repo.orphanFiles(), (std::vector<std::string>{calexpType().expand("run1", vd(3, 3))}));
    EXPECT_THROW(repo.putBytes("calexp", "run1", vd(3, 3), "new"), ConflictError);
    EXPECT_EQ(readFile(orphan), "orphan");
}

TEST(Repository, TemplateWithoutADimensionNeverOverwrites) {
    test::TempDir dir;
    Repository repo = Repository::create(dir / "repo");
    DatasetType t{"raw", StorageClass::Fits, "{run}/raw/{visit}/raw_{visit}_{detector}.fits",
                  {Dimension::Instrument, Dimension::Visit, Dimension::Detector}};
    repo.registerDatasetType(t);
    DataId a{{"instrument", "LSSTCam"}, {"visit", 1}, {"detector", 2}};
    DataId b{{"instrument", "LATISS"}, {"visit", 1}, {"detector", 2}};
    repo.putBytes("raw", "run1", a, "A");
    EXPECT_THROW(repo.putBytes("raw", "run1", b, "B"), ConflictError);
    EXPECT_EQ(readFile(repo.getPath("raw", "run1", a)), "A");
    EXPECT_FALSE(repo.exists("raw", "run1", b));
}

TEST(Repository, QueryByTypeRunAndPartialDataId) {
    test::TempDir dir;
    Repository repo = Repository::create(dir / "repo");
    repo.registerDatasetType(calexpType());
    repo.registerDatasetType(srcType());
    for (int v = 1; v <= 3; ++v)
        for (int d = 0; d < 4; ++d) {
            repo.putBytes("calexp", "run1", vd(v, d), "c");
            if (d % 2 == 0) repo.putBytes("src", v == 3 ? "run2" : "run1", DataId{{"visit", v}, {"detector", d}}, "s");
        }
    EXPECT_EQ(repo.query().size(), 12u + 6u);
    EXPECT_EQ(repo.query({"calexp", std::nullopt, {}}).size(), 12u);
    EXPECT_EQ(repo.query({"src", "run2", {}}).size(), 2u);
    auto v2 = repo.query({std::nullopt, "run1", DataId{{"visit", 2}}});
    ASSERT_EQ(v2.size(), 4u + 2u);
    EXPECT_EQ(v2[0].datasetType, "calexp");
    EXPECT_EQ(v2[0].dataId, vd(2, 0));  // sorted by data ID
    EXPECT_EQ(v2[3].dataId, vd(2, 3));
    EXPECT_EQ(repo.query({"calexp", "run1", DataId{{"detector", 3}}}).size(), 3u);
    EXPECT_TRUE(repo.query({"calexp", "run9", {}}).empty());
    repo.registerRun("empty/run");
    EXPECT_EQ(repo.runs(), (std::vector<std::string>{"empty/run", "run1", "run2"}));
}

TEST(Repository, VerifyDetectsCorruption) {
    test::TempDir dir;
    Repository repo = Repository::create(dir / "repo");
    repo.registerDatasetType(calexpType());
    std::string payload(4096, 'a');
    for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(i * 31);
    for (int d = 0; d < 3; ++d) repo.putBytes("calexp", "run1", vd(1, d), payload);
    fs::path p0 = repo.getPath("calexp", "run1", vd(1, 0));
    fs::path p1 = repo.getPath("calexp", "run1", vd(1, 1));
    fs::path p2 = repo.getPath("calexp", "run1", vd(1, 2));
    {
        std::fstream f(p0, std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(1000);
        f.put('!');  // same size, one byte changed
    }
    fs::resize_file(p1, 100);
    fs::remove(p2);
    EXPECT_EQ(repo.verify("calexp", "run1", vd(1, 0)), VerifyStatus::ChecksumMismatch);
    EXPECT_EQ(repo.verify("calexp", "run1", vd(1, 1)), VerifyStatus::SizeMismatch);
    EXPECT_EQ(repo.verify("calexp", "run1", vd(1, 2)), VerifyStatus::Missing);
    EXPECT_THROW(repo.verify("calexp", "run1", vd(9, 9)), NotFoundError);
}

TEST(Repository, TornAndCorruptManifestLinesAreIgnored) {
    test::TempDir dir;
    fs::path root = dir / "repo";
    {
        Repository repo = Repository::create(root);
        repo.registerDatasetType(calexpType());
        for (int d = 0; d < 5; ++d) repo.putBytes("calexp", "run1", vd(1, d), std::string(4, 'd').append(std::to_string(d)));
    }
    auto mf = manifestFiles(root);
    ASSERT_EQ(mf.size(), 1u);
    std::string text = readFile(mf[0]);
    std::size_t lineLen = text.find('\n') + 1;
    // 1. a complete line whose content was damaged (bit rot): checksum fails
    std::string damaged = text.substr(0, lineLen);
    damaged.replace(damaged.find("run1"), 4, "runX");
    // 2. a crash mid-append: the last line of another writer's file is cut short
    std::string torn = text.substr(lineLen, lineLen / 2);
    std::ofstream(root / "_manifest" / "crashed-writer.jsonl", std::ios::binary) << damaged << torn;
    Repository repo = Repository::open(root);
    auto st = repo.stats();
    EXPECT_EQ(st.datasets, 5u);
    EXPECT_EQ(st.corruptLines, 1u);
    EXPECT_EQ(st.manifestFiles, 2u);
    EXPECT_FALSE(repo.exists("calexp", "runX", vd(1, 0)));
    for (int d = 0; d < 5; ++d) EXPECT_EQ(repo.verify("calexp", "run1", vd(1, d)), VerifyStatus::Ok);
    // The repository keeps working: new datasets are recorded and readable.
    repo.putBytes("calexp", "run1", vd(2, 0), "after the crash");
    EXPECT_EQ(Repository::open(root).stats().datasets, 6u);
    // A torn tail in our own file (truncate the last line) loses only that record.
    auto files = manifestFiles(root);
    for (const auto& f : files) {
        if (f.filename() == "crashed-writer.jsonl") continue;
        std::string t = readFile(f);
        if (t.find("\"visit=2 ") == std::string::npos && t.find("visit=2 detector=0") == std::string::npos) continue;
        fs::resize_file(f, t.size() - 10);
    }
    Repository afterTear = Repository::open(root);
    EXPECT_EQ(afterTear.stats().datasets, 5u);
    EXPECT_FALSE(afterTear.exists("calexp", "run1", vd(2, 0)));
    EXPECT_EQ(afterTear.orphanFiles().size(), 1u) << "the unrecorded file shows up as an orphan";
}

TEST(Repository, TempFilesAreNeverDatasetsAndFailedWritesLeaveNothing) {
    test::TempDir dir;
    fs::path root = dir / "repo";
    Repository repo = Repository::create(root);
    repo.registerDatasetType(calexpType());
    auto before = allFiles(root);
    {
        auto pending = repo.prepare("calexp", "run1", vd(5, 5));
        std::ofstream(pending.tempPath()) << "in progress";
        EXPECT_TRUE(fs::exists(pending.tempPath()));
        EXPECT_FALSE(repo.exists("calexp", "run1", vd(5, 5)));
        EXPECT_TRUE(repo.query().empty());
        EXPECT_TRUE(repo.orphanFiles().empty());
        EXPECT_TRUE(Repository::open(root).query().empty());
        // dropped without commit
    }
    EXPECT_EQ(allFiles(root), before);
    EXPECT_THROW(repo.put("calexp", "run1", vd(5, 5),
                          [](const fs::path& tmp) {
                              std::ofstream(tmp) << "partial";
                              throw IoError("disk full (simulated)", tmp.string());
                          }),
                 IoError);
    EXPECT_EQ(allFiles(root), before) << "no temp file, no dataset, no manifest entry";
    EXPECT_FALSE(repo.exists("calexp", "run1", vd(5, 5)));
    EXPECT_THROW(repo.put("calexp", "run1", vd(5, 5), [](const fs::path&) {}), IoError);  // wrote nothing
    EXPECT_EQ(allFiles(root), before);
    // The same dataset can then be written for real.
    repo.putBytes("calexp", "run1", vd(5, 5), "done");
    EXPECT_EQ(repo.verify("calexp", "run1", vd(5, 5)), VerifyStatus::Ok);
}

TEST(Repository, ConcurrentWritersThreadsAndProcessesAreAllRecorded) {
    test::TempDir dir;
    fs::path root = dir / "repo";
    {
        Repository repo = Repository::create(root);
        repo.registerDatasetType(calexpType());
    }
    constexpr int kProcs = 3, kThreadsShared = 4, kThreadsOwn = 3, kEach = 25;
    // Processes (forked before any thread starts), each with its own Repository object.
    std::vector<pid_t> pids;
    for (int p = 0; p < kProcs; ++p) {
        pid_t pid = fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            int rc = 0;
            try {
                Repository mine = Repository::open(root);
                for (int i = 0; i < kEach; ++i) mine.putBytes("calexp", "procs", vd(100 + p, i), std::string(1, 'p').append(std::to_string(i)));
            } catch (...) {
                rc = 1;
            }
            _exit(rc);
        }
        pids.push_back(pid);
    }
    // Threads sharing one Repository, and threads each with their own.
    Repository shared = Repository::open(root);
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreadsShared; ++t)
        threads.emplace_back([&, t] {
            try {
                for (int i = 0; i < kEach; ++i) shared.putBytes("calexp", "threads", vd(200 + t, i), std::string(100 + i, 't'));
            } catch (...) {
                ++failures;
            }
        });
    for (int t = 0; t < kThreadsOwn; ++t)
        threads.emplace_back([&, t] {
            try {
                Repository own = Repository::open(root);
                for (int i = 0; i < kEach; ++i) own.putBytes("calexp", "threads", vd(300 + t, i), "o");
            } catch (...) {
                ++failures;
            }
        });
    // Racing writers of one and the same dataset: exactly one wins.
    std::atomic<int> wins{0}, conflicts{0};
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&] {
            try {
                Repository own = Repository::open(root);
                own.putBytes("calexp", "race", vd(1, 1), "racer");
                ++wins;
            } catch (const ConflictError&) {
                ++conflicts;
            }
        });
    for (auto& th : threads) th.join();
    for (pid_t pid : pids) {
        int status = 0;
        waitpid(pid, &status, 0);
        EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    EXPECT_EQ(failures.load(), 0);
    EXPECT_EQ(wins.load(), 1);
    EXPECT_EQ(conflicts.load(), 3);
    Repository fresh = Repository::open(root);
    auto st = fresh.stats();
    EXPECT_EQ(st.datasets, std::size_t(kEach * (kProcs + kThreadsShared + kThreadsOwn) + 1));
    EXPECT_EQ(st.corruptLines, 0u);
    EXPECT_EQ(st.duplicateLines, 0u);
    for (const auto& r : fresh.query()) ASSERT_EQ(fresh.verify(r), VerifyStatus::Ok) << r.relativePath;
    EXPECT_TRUE(fresh.orphanFiles().empty());
    // The shared object saw the other writers' datasets too.
    EXPECT_EQ(shared.query().size(), st.datasets);
}
