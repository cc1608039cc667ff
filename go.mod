module github.com/veloxsip/velox

go 1.26
