// meshhook-consumer: everything is wired in consumer/app.cpp (meshhook_consumer).
#include "consumer/app.hpp"

int main(int argc, char** argv) {
    return meshhook::consumer::run(argc, argv);
}
